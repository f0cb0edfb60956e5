"""Render the canonical data model as Markdown (``docs/data-model.md`` is this output; a test
keeps them equal — regenerate with ``python -m kehu.model.docs > docs/data-model.md``)."""

from __future__ import annotations

import sys

from kehu.model.entities import ENTITIES, IMPORT_ORDER
from kehu.model.types import ATTR_PREFIX, LINEAGE_COLUMNS, Column


def _rules(c: Column) -> str:
    parts = []
    if c.choices:
        parts.append("one of " + ", ".join(f"`{v}`" for v in sorted(set(c.choices.values()))))
    if c.min_value is not None:
        parts.append(f"≥ {c.min_value:g}")
    if c.max_value is not None:
        parts.append(f"≤ {c.max_value:g}")
    if c.not_future:
        parts.append("not in the future")
    return "; ".join(parts)


def render_markdown() -> str:
    out = [
        "# kehu data model (数据模型)",
        "",
        "Generated from `src/kehu/model/entities.py` — do not edit by hand; run",
        "`python -m kehu.model.docs > docs/data-model.md`.",
        "",
        "Every entity is a Delta table in the warehouse (`warehouse/<entity>`). Keys are",
        "natural keys from the source systems: importing a row whose key exists updates it",
        "when a value changed and leaves it alone otherwise. Every row also carries lineage",
        "columns " + ", ".join(f"`{c}`" for c in LINEAGE_COLUMNS) + " (the import, file and",
        "row it came from). Entities marked *custom attributes* keep every extra source column",
        f"as a typed `{ATTR_PREFIX}<name>` column (type inferred from the data: int, float,",
        "date, timestamp, bool or string) that segments and models can use.",
        "",
        "Import order, so references resolve: " + " → ".join(IMPORT_ORDER) + ".",
        "",
        "Types: `string`, `int` (64-bit), `float` (64-bit), `date`, `timestamp` (business",
        "local time, microseconds), `bool`. The *aliases* are source headers (Chinese and",
        "English) the importer maps onto the column automatically.",
        "",
    ]
    for name in IMPORT_ORDER:
        e = ENTITIES[name]
        out += [f"## {e.title} — {e.title_zh} (`{e.name}`)", "", e.description, ""]
        out.append(f"- **Key:** {', '.join(f'`{k}`' for k in e.key)}")
        if e.references:
            refs = ", ".join(f"`{r.column}` → `{r.entity}`" + ("" if r.enforce else " (checked "
                             "in the quality report, not enforced)") for r in e.references)
            out.append(f"- **References:** {refs}")
        if e.custom_attributes:
            out.append("- **Custom attributes:** yes")
        out += ["", "| column | type | required | meaning | 含义 | rules | aliases |",
                "|---|---|---|---|---|---|---|"]
        for c in e.columns:
            req = "key" if c.name in e.key else ("yes" if c.required else "")
            aliases = ", ".join(c.aliases[:8]) + (" …" if len(c.aliases) > 8 else "")
            out.append(f"| `{c.name}` | {c.type.value} | {req} | {c.description} | "
                       f"{c.description_zh} | {_rules(c)} | {aliases} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover
    sys.stdout.write(render_markdown())
