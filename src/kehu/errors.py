"""One exception hierarchy for kehu.

Every error a user can cause is a :class:`KehuError`; its message names the file, row,
column or parameter, what was expected, what arrived, and what to do. The CLI turns these
into a one-line message and a meaningful exit code instead of a traceback.

>>> err = KehuInputError("The '--customers' parameter must be an int >= 1. Got 0 instead.")
>>> isinstance(err, ValueError) and isinstance(err, KehuError)
True
>>> err.exit_code
2
"""

from __future__ import annotations


class KehuError(Exception):
    """Base class of every error kehu raises on purpose."""

    #: process exit code the CLI uses for this kind of error
    exit_code: int = 1


class KehuInputError(ValueError, KehuError):
    """Bad input from the user: a parameter, a file, a mapping, a setting."""

    exit_code = 2


class WorkspaceNotFoundError(KehuError):
    """No kehu workspace where one was expected."""

    exit_code = 3


class MappingError(KehuInputError):
    """Source columns cannot be mapped onto the canonical model without help."""

    exit_code = 4


class ImportAbortedError(KehuError):
    """An import stopped before its commit; the warehouse is unchanged."""

    exit_code = 5


class NotFoundError(KehuInputError):
    """A named record (customer, import, table) does not exist."""

    exit_code = 6


class EngineError(KehuError):
    """An analytics engine (DuckDB, Spark) failed; the message carries the context."""

    exit_code = 7


class StoreError(KehuError):
    """The app store (SQLAlchemy database) could not be reached or migrated."""

    exit_code = 8
