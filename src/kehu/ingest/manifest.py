"""Loading many source files at once from a manifest (a nightly full load, the demo).

A manifest (YAML or JSON) lists what to import; entries run in the model's import order so
references resolve (employees and products before customers, customers before facts)::

    sources:
      - entity: customers
        files: [crm/客户资料.csv]
      - entity: transactions
        files: ["pos/orders-*.csv"]      # globs, relative to the manifest
        mapping: mappings/orders.yaml    # optional
        generate_key: false
        add_unknown_customers: false
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, Field, ValidationError

from kehu.errors import KehuInputError
from kehu.i18n import _
from kehu.ingest.importer import Importer, ImportReport, plan_import
from kehu.model import IMPORT_ORDER, entity

if TYPE_CHECKING:
    from kehu.workspace import Workspace


class Source(BaseModel):
    entity: str
    files: list[str]
    mapping: str | None = None
    generate_key: bool = False
    add_unknown_customers: bool = False
    encoding: str | None = None


class Manifest(BaseModel):
    sources: list[Source] = Field(default_factory=list)

    @classmethod
    def load(cls, path: str | Path) -> Manifest:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise KehuInputError(_("Manifest not found: {path}.").format(path=p)) from exc
        try:
            data: Any = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
            return cls(**(data or {}))
        except (ValueError, yaml.YAMLError, TypeError, ValidationError) as exc:
            raise KehuInputError(_("{path}: not a valid manifest ({err}).").format(
                path=p, err=exc)) from exc

    def ordered(self) -> list[Source]:
        rank = {name: i for i, name in enumerate(IMPORT_ORDER)}
        for s in self.sources:
            entity(s.entity)  # a clear error for an unknown entity
        return sorted(self.sources, key=lambda s: rank[entity(s.entity).name])


def load_manifest(ws: Workspace, path: str | Path,
                  on_file: Callable[[Source, int, int], None] | None = None,
                  progress: Callable[[str, float], None] | None = None) -> list[ImportReport]:
    """Import every source of the manifest at ``path``; returns one report per entry."""
    base = Path(path).parent
    manifest = Manifest.load(path)
    sources = manifest.ordered()
    reports = []
    for i, src in enumerate(sources):
        files: list[Path] = []
        for pattern in src.files:
            matches = sorted(base.glob(pattern)) if any(c in pattern for c in "*?[") \
                else [base / pattern]
            if not matches:
                raise KehuInputError(_("{path}: no file matches '{pattern}'.").format(
                    path=path, pattern=pattern))
            files.extend(matches)
        if on_file:
            on_file(src, i, len(sources))
        from kehu.ingest.readers import ReadOptions

        opts = ReadOptions(encoding=src.encoding, batch_rows=ws.settings.ingest.batch_rows)
        plans = plan_import(ws, src.entity, files,
                            mapping_file=base / src.mapping if src.mapping else None,
                            read_options=opts, generate_key=src.generate_key)
        importer = Importer(ws, add_unknown_customers=src.add_unknown_customers,
                            progress=progress)
        reports.append(importer.run(plans))
    return reports


def detect_entity(headers: list[str], filename: str = "") -> str | None:
    """Guess which entity a file holds from its headers: the entity whose required columns
    all map, with the most columns mapped (its name in the file name breaks ties).

    >>> detect_entity(["交易流水号", "客户编号", "交易时间", "金额"])
    'transactions'
    >>> detect_entity(["客户编号", "姓名", "手机号码"], "crm_customers.csv")
    'customers'
    """
    from kehu.ingest.mapping import propose
    from kehu.model import ENTITIES

    best: tuple[int, int, str] | None = None
    low = filename.lower()
    for name, ent in ENTITIES.items():
        p = propose(ent, headers)
        if not p.complete:
            continue
        score = (len(p.mapping.columns), 1 if name in low or name.rstrip("s") in low else 0,
                 name)
        named_first = (score[1], score[0], name)
        if best is None or named_first > best:
            best = named_first
    return best[2] if best else None


def manifest_for_folder(folder: str | Path) -> Manifest:
    """A manifest for every readable file in ``folder`` whose entity can be detected."""
    from kehu.ingest.readers import formats, open_source

    exts = {e for es in formats().values() for e in es}
    sources: dict[str, Source] = {}
    for f in sorted(Path(folder).iterdir()):
        if not f.is_file() or f.suffix.lower() not in exts:
            continue
        try:
            headers = open_source(f).headers
        except KehuInputError:
            continue
        ent = detect_entity(headers, f.name)
        if ent is None:
            continue
        sources.setdefault(ent, Source(entity=ent, files=[])).files.append(f.name)
    return Manifest(sources=list(sources.values()))
