"""Built-in datasets, shipped inside the package (nothing is downloaded).

>>> sorted(DATASETS)
['cdnow', 'cdnow_sample']
>>> path("cdnow").name
'CDNOW_master.txt'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kehu.errors import KehuInputError
from kehu.i18n import _

if TYPE_CHECKING:
    from kehu.ingest import ImportReport
    from kehu.workspace import Workspace

DATA_DIR = Path(__file__).parent / "data"


@dataclass(frozen=True)
class Dataset:
    name: str
    file: str
    mapping: str
    description: str
    entity: str = "transactions"

    @property
    def path(self) -> Path:
        return DATA_DIR / self.file

    @property
    def mapping_path(self) -> Path:
        return DATA_DIR / self.mapping


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset("cdnow", "CDNOW_master.txt", "cdnow_master.mapping.yaml",
                "CDNOW: 23,570 customers' CD purchases, Jan 1997 – Jun 1998 (Fader & Hardie)"),
        Dataset("cdnow_sample", "CDNOW_sample.txt", "cdnow_sample.mapping.yaml",
                "CDNOW 1/10 sample: 2,357 customers (Fader, Hardie & Lee 2005)"),
    )
}


def get(name: str) -> Dataset:
    try:
        return DATASETS[name]
    except KeyError:
        raise KehuInputError(_("Unknown dataset '{name}'. Available: {names}.").format(
            name=name, names=", ".join(DATASETS))) from None


def path(name: str) -> Path:
    """The bundled file of dataset ``name``."""
    return get(name).path


def load(ws: Workspace, name: str) -> ImportReport:
    """Import dataset ``name`` into workspace ``ws`` through the public transactions importer
    (customers are created from the ids the transactions mention). Returns the report."""
    from kehu.ingest import Importer, plan_import

    d = get(name)
    plans = plan_import(ws, d.entity, [d.path], mapping_file=d.mapping_path)
    return Importer(ws, add_unknown_customers=True).run(plans)
