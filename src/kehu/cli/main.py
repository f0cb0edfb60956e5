"""Entry point of the ``kehu`` command.

Exit codes: 0 success; 1 kehu error; 2 bad input (parameter, file, setting); 3 no workspace;
4 mapping needs help; 5 import aborted; 6 not found; 7 engine error; 8 app store error;
130 interrupted. User errors print one message, never a traceback (``KEHU_DEBUG=1`` shows it).
"""

from __future__ import annotations

import os
import sys

import typer
from rich.markup import escape

from kehu.cli.commands import register_all
from kehu.cli.output import err_console
from kehu.errors import KehuError
from kehu.i18n import _, set_locale

app = typer.Typer(
    name="kehu",
    help="kehu (客户) — analytical CRM: import, segment, value, predict, act, measure.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    lang: str | None = typer.Option(None, "--lang", help="Language of the output: zh_CN or en "
                                    "(default: $KEHU_LANG, $LANG)."),
) -> None:
    """kehu (客户) — analytical CRM: import, segment, value, predict, act, measure."""
    if lang:
        set_locale(lang)


register_all(app)


def run(argv: list[str] | None = None) -> None:
    """Run the CLI, turning kehu errors into a message and an exit code."""
    set_locale(os.environ.get("KEHU_LANG") or os.environ.get("LANG"))
    from kehu.cli.common import close_workspaces

    try:
        try:
            app(args=argv, prog_name="kehu")
        finally:
            close_workspaces()
    except KehuError as exc:
        if os.environ.get("KEHU_DEBUG"):
            raise
        label = _("Error")
        err_console.print(f"[bold red]{label}:[/] {escape(str(exc))}", highlight=False,
                          soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print(_("Interrupted."))
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    run()
