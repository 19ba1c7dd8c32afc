"""Speech input errors and the bad-file policy.

``on_bad_file``: an unreadable or empty audio file, a missing or malformed alignment, an alignment past the end of
the audio, an unknown phone (or class) either stops with the file (and line) named (``error``) or drops the file
and is counted in one warning per split (``skip``); ``SpeechDataError.kind`` is what the warning counts.
"""

from __future__ import annotations

from typing import Literal

from core.errors import DataError

OnBadFile = Literal["error", "skip"]


class SpeechDataError(DataError):
    """A bad input file: the message starts with the file (and ``:line`` for alignments); a ``DataError``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
