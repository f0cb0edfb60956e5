"""Mapping source headers onto the canonical model: proposal, YAML files, validation.

A mapping file (YAML) looks like::

    entity: transactions
    columns:            # canonical column: source header
      customer_id: 客户编号
      transaction_time: 交易日期
      amount: 金额
    attributes:         # source header: custom attribute (customers, products)
      会员等级: {name: member_level, type: string}
    ignore: [备注]
    formats:            # explicit date/time format of a column, if needed
      transaction_time: "%Y%m%d"
    defaults:           # constant value for a canonical column the source lacks
      kind: purchase
    generate_key: false # true: the key is '<file name>:<row>' when the source has none
    source:             # how to read the file (optional; detected otherwise)
      encoding: gbk
      delimiter: ","
      header: true

>>> from kehu.model import entity
>>> p = propose(entity("transactions"), ["客户编号", "交易日期", "金额", "交易流水号", "备注"])
>>> p.mapping.columns["amount"], p.unmapped_required, p.unused
('金额', [], ['备注'])
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

from kehu.errors import KehuInputError, MappingError
from kehu.i18n import _
from kehu.model import Entity, entity
from kehu.model.types import ATTR_PREFIX, ColumnType
from kehu.specfiles import read_yaml, validation_problems


class AttributeSpec(BaseModel):
    """A source column kept as a typed custom attribute."""

    name: str
    type: ColumnType | None = None  # None: inferred from the data at import

    @field_validator("name")
    @classmethod
    def _valid_name(cls, v: str) -> str:
        slug = attribute_slug(v)
        if not slug:
            raise ValueError("attribute name is empty")
        return slug


class SourceOptions(BaseModel):
    encoding: str | None = None
    delimiter: str | None = None
    header: bool = True
    columns: list[str] | None = Field(None, description="Column names when header is false.")
    sheet: str | None = None
    format: str | None = None


class Mapping(BaseModel):
    """How one source file maps onto one entity."""

    entity: str
    columns: dict[str, str] = Field(default_factory=dict)
    attributes: dict[str, AttributeSpec] = Field(default_factory=dict)
    ignore: list[str] = Field(default_factory=list)
    formats: dict[str, str] = Field(default_factory=dict)
    defaults: dict[str, Any] = Field(default_factory=dict)
    generate_key: bool = False
    source: SourceOptions = Field(default_factory=SourceOptions)

    def check(self, ent: Entity, headers: list[str] | None = None) -> None:
        """Raise :class:`MappingError` naming what does not fit the entity or the file."""
        problems: list[str] = []
        for col in list(self.columns) + list(self.formats) + list(self.defaults):
            if not ent.has_column(col):
                problems.append(_("'{col}' is not a column of {entity}").format(
                    col=col, entity=ent.name))
        if headers is not None:
            known = set(headers)
            for col, src in self.columns.items():
                if src not in known:
                    problems.append(_("column '{col}' maps to '{src}', which is not in the file "
                                      "(headers: {headers})").format(
                        col=col, src=src, headers=", ".join(headers)))
        if self.attributes and not ent.custom_attributes:
            problems.append(_("{entity} has no custom attributes").format(entity=ent.name))
        missing = [c for c in ent.required if c not in self.columns and c not in self.defaults
                   and not (self.generate_key and c in ent.key)]
        if missing:
            problems.append(_("required columns not mapped: {cols}").format(
                cols=", ".join(missing)))
        if problems:
            raise MappingError(_("The mapping for {entity} does not fit: {problems}.").format(
                entity=ent.name, problems="; ".join(problems)))

    def to_yaml(self) -> str:
        data = self.model_dump(mode="json", exclude_defaults=True)
        data["entity"] = self.entity
        return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)

    @classmethod
    def load(cls, path: str | Path) -> Mapping:
        p = Path(path)
        data = read_yaml(p, _("Mapping file not found: {path}."))
        if not isinstance(data, dict):
            raise KehuInputError(_("{path}: a mapping file must be a YAML mapping with an "
                                   "'entity' key.").format(path=p))
        try:
            return cls(**data)
        except ValidationError as exc:
            raise KehuInputError(_("{path}: invalid mapping: {problems}").format(
                path=p, problems=validation_problems(exc))) from exc


class Proposal(BaseModel):
    """A proposed mapping and what it could not settle."""

    mapping: Mapping
    unmapped_required: list[str] = Field(default_factory=list)
    ambiguous: dict[str, list[str]] = Field(default_factory=dict)  # header or column -> options
    unused: list[str] = Field(default_factory=list)  # headers neither mapped nor attributes

    @property
    def complete(self) -> bool:
        return not self.unmapped_required and not self.ambiguous


_PAREN = re.compile(r"[（(][^）)]*[）)]")
_SEP = re.compile(r"[\s_\-./:：]+")


def normalise_header(h: str) -> str:
    """Normalise a header for matching: NFKC, lower case, units in brackets and separators
    removed.

    >>> [normalise_header(h) for h in (" Customer_ID ", "金额（元）", "E-mail")]
    ['customerid', '金额', 'email']
    """
    s = unicodedata.normalize("NFKC", h).strip().lower()
    s = _PAREN.sub("", s)
    return _SEP.sub("", s)


def attribute_slug(name: str) -> str:
    """A safe column-name part for a custom attribute (Chinese characters are kept).

    >>> attribute_slug("会员 等级"), attribute_slug("Monthly Income (¥)")
    ('会员_等级', 'monthly_income')
    """
    s = unicodedata.normalize("NFKC", name).strip().lower()
    s = _PAREN.sub("", s)
    s = re.sub(r"[^\w]+", "_", s, flags=re.UNICODE).strip("_")
    return s.removeprefix(ATTR_PREFIX)


def _index(ent: Entity) -> dict[str, list[str]]:
    idx: dict[str, list[str]] = {}
    for col in ent.columns:
        for name in (col.name, *col.aliases):
            key = normalise_header(name)
            if col.name not in idx.setdefault(key, []):
                idx[key].append(col.name)
    return idx


def propose(ent: Entity, headers: list[str], base: Mapping | None = None) -> Proposal:
    """Propose a mapping of ``headers`` onto ``ent`` from the zh/en aliases of the model.

    ``base`` (a mapping file) wins where it says something; the proposal fills the rest.
    """
    idx = _index(ent)
    mapping = base.model_copy(deep=True) if base else Mapping(entity=ent.name)
    taken_sources = set(mapping.columns.values()) | set(mapping.attributes) | set(mapping.ignore)
    ambiguous: dict[str, list[str]] = {}
    by_column: dict[str, list[str]] = {}
    for h in headers:
        if h in taken_sources:
            continue
        cands = [c for c in idx.get(normalise_header(h), []) if c not in mapping.columns]
        if len(cands) == 1:
            by_column.setdefault(cands[0], []).append(h)
        elif len(cands) > 1:
            exact = [c for c in cands if normalise_header(c) == normalise_header(h)]
            if len(exact) == 1:
                by_column.setdefault(exact[0], []).append(h)
            else:
                ambiguous[h] = cands
    for col, hs in by_column.items():
        if len(hs) == 1:
            mapping.columns[col] = hs[0]
        else:
            exact = [h for h in hs if normalise_header(h) == normalise_header(col)]
            if len(exact) == 1:
                mapping.columns[col] = exact[0]
            else:
                ambiguous[col] = hs
    used = set(mapping.columns.values()) | set(mapping.attributes) | set(mapping.ignore)
    in_ambiguity = {h for k, v in ambiguous.items() for h in [k, *v]}
    unused = []
    for i, h in enumerate(headers, start=1):
        if h in used or h in in_ambiguity:
            continue
        if ent.custom_attributes:
            mapping.attributes[h] = AttributeSpec(name=attribute_slug(h) or f"column_{i}")
        else:
            unused.append(h)
    unmapped = [c for c in ent.required if c not in mapping.columns and c not in mapping.defaults
                and not (mapping.generate_key and c in ent.key)]
    return Proposal(mapping=mapping, unmapped_required=unmapped, ambiguous=ambiguous,
                    unused=unused)


def resolve(entity_name: str, headers: list[str], mapping_file: str | Path | None = None,
            ) -> Proposal:
    """The proposal for a file: the mapping file's decisions plus proposals for the rest."""
    ent = entity(entity_name)
    base = Mapping.load(mapping_file) if mapping_file else None
    if base is not None and entity(base.entity).name != ent.name:
        raise MappingError(_("Mapping file {path} is for '{other}', not '{entity}'.").format(
            path=mapping_file, other=base.entity, entity=ent.name))
    return propose(ent, headers, base)
