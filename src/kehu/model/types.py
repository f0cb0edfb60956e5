"""Types of the canonical model: :class:`Entity`, :class:`Column`, :class:`Reference`."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import pyarrow as pa


class ColumnType(StrEnum):
    """Logical column types and their Arrow storage type.

    >>> ColumnType.DATE.arrow
    DataType(date32[day])
    """

    STRING = "string"
    INT = "int"
    FLOAT = "float"
    DATE = "date"
    TIMESTAMP = "timestamp"
    BOOL = "bool"

    @property
    def arrow(self) -> pa.DataType:
        return _ARROW[self]


_ARROW: dict[ColumnType, pa.DataType] = {
    ColumnType.STRING: pa.string(),
    ColumnType.INT: pa.int64(),
    ColumnType.FLOAT: pa.float64(),
    ColumnType.DATE: pa.date32(),
    ColumnType.TIMESTAMP: pa.timestamp("us"),
    ColumnType.BOOL: pa.bool_(),
}


@dataclass(frozen=True)
class Column:
    """One column of an entity.

    ``aliases`` are source header names (English and Chinese) that map to this column;
    ``choices`` maps accepted source values (any case, zh or en) to the canonical code;
    ``min_value`` rejects smaller numbers; ``not_future`` rejects dates after the import time.
    """

    name: str
    type: ColumnType
    description: str
    description_zh: str
    required: bool = False
    aliases: tuple[str, ...] = ()
    choices: dict[str, str] | None = None
    min_value: float | None = None
    max_value: float | None = None
    not_future: bool = False

    @property
    def arrow_type(self) -> pa.DataType:
        return self.type.arrow


@dataclass(frozen=True)
class Reference:
    """A foreign key: ``column`` of this entity must exist as the key of ``entity``."""

    column: str
    entity: str
    #: reject the row when the referenced record is unknown (else flag it in the quality report)
    enforce: bool = True


@dataclass(frozen=True)
class Entity:
    """An entity of the canonical model (a warehouse table)."""

    name: str
    title: str
    title_zh: str
    description: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    references: tuple[Reference, ...] = ()
    #: whether unmapped source columns are kept as typed custom attributes (``attr_*`` columns)
    custom_attributes: bool = False
    #: the column that orders facts on the customer timeline, if any
    time_column: str | None = None
    _by_name: dict[str, Column] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name.update({c.name: c for c in self.columns})

    def column(self, name: str) -> Column:
        return self._by_name[name]

    def has_column(self, name: str) -> bool:
        return name in self._by_name

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def arrow_schema(self, extra: dict[str, pa.DataType] | None = None) -> pa.Schema:
        """The warehouse schema: canonical columns, then custom attributes, then lineage."""
        fields = [pa.field(c.name, c.arrow_type) for c in self.columns]
        for name, typ in (extra or {}).items():
            fields.append(pa.field(name, typ))
        fields.extend(LINEAGE_FIELDS)
        return pa.schema(fields)


#: lineage columns every warehouse row carries
LINEAGE_FIELDS = (
    pa.field("_import_id", pa.string()),
    pa.field("_source_file", pa.string()),
    pa.field("_source_row", pa.int64()),
)
LINEAGE_COLUMNS = tuple(f.name for f in LINEAGE_FIELDS)
#: prefix of custom attribute columns
ATTR_PREFIX = "attr_"
