"""Reading the YAML files people write (mappings, segments, manifests) with errors that name
the file and the problem, and formatting pydantic validation errors the same way everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from kehu.errors import KehuInputError
from kehu.i18n import _

M = TypeVar("M", bound=BaseModel)


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
    return "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" if e["loc"]
                     else e["msg"] for e in exc.errors()[:limit])


def validated(model: type[M], data: Any, where: str, what: str) -> M:
    """``data`` validated as ``model``, or a :class:`KehuInputError` ``"{where}: invalid
    {what}: {problems}"`` naming each field, what it expected and what arrived.

    >>> from pydantic import BaseModel
    >>> class Cap(BaseModel):
    ...     max_contacts: int
    >>> validated(Cap, {"max_contacts": "x"}, "policy.yaml", "contact policy")
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    kehu.errors.KehuInputError: policy.yaml: invalid contact policy: max_contacts: Input ...
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise KehuInputError(_("{where}: invalid {what}: {problems}").format(
            where=where, what=what, problems=validation_problems(exc))) from exc
