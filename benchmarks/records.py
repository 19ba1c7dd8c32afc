"""``--record FILE``: a long benchmark's finished runs as JSON lines, so an interrupted run resumes."""

from __future__ import annotations

import json
from pathlib import Path


def read_records(path: Path | None) -> list[dict]:
    """The rows of ``path`` (none when it is not given or does not exist yet)."""
    if path is None or not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append_record(path: Path | None, row: dict) -> None:
    """Add one finished run to ``path`` (nothing when no record is kept)."""
    if path is not None:
        with path.open("a") as f:
            f.write(json.dumps(row) + "\n")
