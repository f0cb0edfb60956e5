"""Fill zh_CN translations from a JSON dict file (msgid -> msgstr) into the catalogue.

    python scripts/zh_fill.py translations.json
"""

from __future__ import annotations

import json
import sys

from babel.messages.pofile import read_po, write_po

from kehu.i18n.messages import po_path


def main(path: str) -> None:
    with open(path, encoding="utf-8") as fh:
        new = json.load(fh)
    p = po_path("zh_CN")
    with p.open("rb") as fh:
        cat = read_po(fh, locale="zh_CN")
    filled = 0
    for m in cat:
        if m.id and m.id in new:
            m.string = new[m.id]
            filled += 1
    with p.open("wb") as fh:
        write_po(fh, cat, width=100, sort_output=True)
    missing = [m.id for m in cat if m.id and not m.string]
    sys.stdout.write(json.dumps({"filled": filled, "missing": missing}, ensure_ascii=False,
                                indent=0) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
