"""Run one benchmark cell in a fresh interpreter, so its peak memory and any crash stay its own.

Shared by the benchmark scripts (each puts the project root on ``sys.path`` and imports ``benchmarks.child``).
"""

from __future__ import annotations

import json
import subprocess
import sys


def run_child(script: str, args: list[str], timeout_s: float) -> dict:
    """``python script *args``; {"result": the child's last stdout line as JSON} or {"error": why not}."""
    try:
        proc = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": f"failed (timeout > {timeout_s:.0f} s)"}
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no stderr)"]
        hint = ", killed: likely OOM" if proc.returncode in (-9, 137) else ""
        print(f"  [{' '.join(args)}] exit {proc.returncode}{hint}: {tail[0]}", file=sys.stderr)
        return {"error": f"failed (exit code {proc.returncode}{hint})"}
    try:
        return {"result": json.loads(proc.stdout.strip().splitlines()[-1])}
    except (IndexError, json.JSONDecodeError):
        return {"error": "failed (no result)"}
