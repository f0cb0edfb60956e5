"""The canonical data model: every entity kehu keeps in its warehouse, defined as data.

The definitions drive the importers (types, required columns, keys, references, allowed values),
the header proposal (zh/en aliases), the data-quality report and ``docs/data-model.md``.
"""

from __future__ import annotations

from kehu.model.entities import ENTITIES, IMPORT_ORDER, entity
from kehu.model.types import Column, ColumnType, Entity, Reference

__all__ = ["ENTITIES", "IMPORT_ORDER", "Column", "ColumnType", "Entity", "Reference", "entity"]
