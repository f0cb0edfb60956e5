"""Reading the YAML files people write (mappings, segments, manifests) with errors that name
the file and the problem, and formatting pydantic validation errors the same way everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from kehu.errors import KehuInputError
from kehu.i18n import _


def read_yaml(path: str | Path, not_found: str) -> Any:
    """The parsed content of ``path``; ``not_found`` is the message (with ``{path}``) for a
    missing file."""
    p = Path(path)
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise KehuInputError(not_found.format(path=p)) from exc
    except yaml.YAMLError as exc:
        raise KehuInputError(_("{path}: not valid YAML ({err}).").format(path=p, err=exc)
                             ) from exc


def validation_problems(exc: ValidationError, limit: int = 6) -> str:
    """``loc: message; …`` for the first ``limit`` errors of a pydantic validation."""
    return "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}"
                     for e in exc.errors()[:limit])
