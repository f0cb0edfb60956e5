"""Ingest: read source files, map them onto the model, validate, quarantine, load."""

from __future__ import annotations

from kehu.ingest.importer import (
    FilePlan,
    Importer,
    ImportReport,
    plan_import,
    require_complete,
)
from kehu.ingest.mapping import Mapping, Proposal, propose
from kehu.ingest.readers import ReadOptions, open_source, register_reader

__all__ = [
    "FilePlan", "ImportReport", "Importer", "Mapping", "Proposal", "ReadOptions", "open_source",
    "plan_import", "propose", "register_reader", "require_complete",
]
