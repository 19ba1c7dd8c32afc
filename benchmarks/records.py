"""``--record FILE``: a long benchmark's finished runs as JSON lines, so an interrupted run resumes."""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path


def read_records(path: Path | None) -> list[dict]:
    """The rows of ``path`` (none when it is not given or does not exist yet)."""
    if path is None or not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def machine() -> str:
    """The CPU's model name and core count, for a record's ``measured`` field."""
    try:
        with open("/proc/cpuinfo") as f:
            name = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        name = platform.processor() or platform.machine()
    return f"{name}, {os.cpu_count()} cores"


def append_record(path: Path | None, row: dict) -> None:
    """Add one finished run to ``path`` (nothing when no record is kept), stamped with the date and machine
    (``measured``) unless the row has them."""
    if path is not None:
        row = {**row, "measured": row.get("measured") or f"{datetime.date.today()}, {machine()}"}
        with path.open("a") as f:
            f.write(json.dumps(row) + "\n")
