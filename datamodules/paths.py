"""Where data lives: library code has no machine-specific default roots; the config or command line names them.

``require_dir`` / ``require_file`` turn a missing (or unset) data path into one ``DataNotFoundError`` that says
which config key to set, the path that was looked at (and, when relative, against which working directory),
and where the data can be had.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import DataError, UserError


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


def read_text_file(path: str | os.PathLike, key: str | None = None) -> str:
    """A text file as UTF-8 (a leading byte-order mark dropped); an invalid byte is one ``DataError`` naming the
    file, line and column (and the config key), not a bare ``UnicodeDecodeError``."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        start = err.start
        line = raw.count(b"\n", 0, start) + 1
        column = start - (raw.rfind(b"\n", 0, start) + 1) + 1
        raise DataError(f"invalid UTF-8 byte 0x{raw[start]:02x} at column {column}", where=f"{path}:{line}",
                        expected="UTF-8 text" + (f" ({key})" if key else ""),
                        fix="Re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8).") from None
