"""kehu (客户): an open-source analytical CRM.

The public API is small: open a :class:`Workspace` and use its services.

>>> import kehu
>>> kehu.__version__ >= "0.1"
True
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from kehu.errors import KehuError, KehuInputError
from kehu.workspace import Workspace

try:
    __version__ = version("kehu")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["KehuError", "KehuInputError", "Workspace", "__version__"]
