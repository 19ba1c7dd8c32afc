"""Where data lives: library code has no machine-specific default roots; the config or command line names them.

``require_dir`` / ``require_file`` turn a missing (or unset) data path into one ``DataNotFoundError`` that says
which config key to set, the path that was looked at (and, when relative, against which working directory),
and where the data can be had.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import UserError


class DataNotFoundError(FileNotFoundError, UserError):
    """A data file or folder a config points at is missing (or no path was given).

    A ``FileNotFoundError`` and a ``core.errors.UserError`` (so a ``ValueError`` too, like the errors the
    datamodules raised before): the CLI prints it as one line.
    """

    def __init__(self, message: str) -> None:
        self.what, self.where, self.expected, self.fix = message, None, None, None
        FileNotFoundError.__init__(self, message)

    def __str__(self) -> str:
        return self.what


def describe(path: str | os.PathLike) -> str:
    """``path``, with the working directory it is relative to when it is not absolute."""
    path = Path(path)
    return str(path) if path.is_absolute() else f"{path} (relative to {Path.cwd()})"


def missing(key: str, path: str | os.PathLike | None, expected: str, source: str) -> DataNotFoundError:
    """The error for a data path that is unset or not there: the key to set, the path, what should be there and
    where to get it."""
    found = "is not set" if path is None else f"= {describe(path)} does not exist"
    return DataNotFoundError(f"{key} {found}; expected {expected}. Set {key} in the config or on the command line "
                             f"(--{key} PATH). Get the data from {source}")


def require_dir(path: str | os.PathLike | None, key: str, expected: str, source: str) -> Path:
    """``path`` as a Path when it is an existing folder, else ``missing(...)`` raised."""
    if path is None or not Path(path).is_dir():
        raise missing(key, path, expected, source)
    return Path(path)


def require_file(path: str | os.PathLike | None, key: str, expected: str, source: str) -> Path:
    """``path`` as a Path when it is an existing file, else ``missing(...)`` raised."""
    if path is None or not Path(path).is_file():
        raise missing(key, path, expected, source)
    return Path(path)
