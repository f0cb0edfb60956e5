"""Generate the CLI reference (``docs/cli.md``) and the settings reference
(``docs/settings.md``) from the code; ``tests/test_docs.py`` keeps the files equal to this
output. Regenerate with ``python -m kehu.cli.docs``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from kehu.settings import Settings

DOCS = Path(__file__).resolve().parents[3] / "docs"


def _walk(cmd: Any, path: list[str]) -> list[tuple[list[str], Any]]:
    out = [(path, cmd)]
    for name in sorted(getattr(cmd, "commands", {}) or {}):
        out.extend(_walk(cmd.commands[name], [*path, name]))
    return out


def render_cli() -> str:
    from kehu.cli.main import app

    root = typer.main.get_command(app)
    lines = ["# kehu command reference", "",
             "Generated from the CLI — do not edit by hand; run `python -m kehu.cli.docs`.", "",
             "Exit codes: 0 success; 1 kehu error; 2 bad input; 3 no workspace; 4 mapping "
             "needs help; 5 import aborted; 6 not found; 7 engine error; 8 app store error; "
             "130 interrupted.", ""]
    for path, cmd in _walk(root, ["kehu"]):
        if len(path) == 1:
            continue
        lines += [f"## `{' '.join(path)}`", "", (cmd.help or "").strip().split("\n\n")[0], ""]
        params = [p for p in cmd.params if p.name != "help"]
        if params:
            lines += ["| argument / option | help |", "|---|---|"]
            for p in params:
                names = ", ".join(f"`{o}`" for o in getattr(p, "opts", [])) \
                    if p.param_type_name == "option" else f"`{p.name.upper()}`"
                help_text = (getattr(p, "help", None) or "").replace("|", "\\|")
                lines.append(f"| {names} | {help_text} |")
            lines.append("")
    return "\n".join(lines)


def render_settings() -> str:
    lines = ["# kehu settings (`kehu.toml`)", "",
             "Generated from `src/kehu/settings.py` — do not edit by hand; run "
             "`python -m kehu.cli.docs`.", "",
             "Each key can be overridden by an environment variable "
             "`KEHU_<SECTION>__<KEY>` (e.g. `KEHU_STORE__URL`).", ""]
    for section, field in Settings.model_fields.items():
        name = field.alias or section
        model = field.annotation
        if not hasattr(model, "model_fields"):  # a free-form table, e.g. [channels.<name>]
            lines += [f"## `[{name}.<name>]`", "", field.description or "", ""]
            continue
        lines += [f"## `[{name}]`", "", "| key | default | meaning |", "|---|---|---|"]
        for key, f in model.model_fields.items():  # type: ignore[union-attr]
            default = f.default if f.default is not None else ""
            lines.append(f"| `{key}` | `{default}` | {f.description or ''} |")
        lines.append("")
    return "\n".join(lines)


def write_all() -> None:
    DOCS.mkdir(exist_ok=True)
    (DOCS / "cli.md").write_text(render_cli() + "\n", encoding="utf-8")
    (DOCS / "settings.md").write_text(render_settings() + "\n", encoding="utf-8")


if __name__ == "__main__":  # pragma: no cover
    write_all()
