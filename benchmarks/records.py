"""``--record FILE``: a long benchmark's finished runs as JSON lines, so an interrupted run resumes; and the
machine a table was measured on (``cpu_model``), which every benchmark prints."""

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


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> str:
    """The CPU's model name and core count, for a record's ``measured`` field."""
    return f"{cpu_model()}, {os.cpu_count()} cores"


def append_record(path: Path | None, row: dict) -> None:
    """Add one finished run to ``path`` (nothing when no record is kept), stamped with the date and machine
    (``measured``) unless the row has them."""
    if path is not None:
        row = {**row, "measured": row.get("measured") or f"{datetime.date.today()}, {machine()}"}
        with path.open("a") as f:
            f.write(json.dumps(row) + "\n")
