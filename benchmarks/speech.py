"""Speech encoder on long recordings: Truncated(±32) vs Full attention, and streaming (CPU, forward only).

Why: a frame classifier sees 100 frames per second, so one minute is 6,000 frames and one hour 360,000.
Under ``Truncated(32, 32)`` each frame attends to 65 others and the ``banded`` backend costs O(L·65); under
``Full`` every frame attends to every other: O(L²) time, and with relative positions (Shaw scores, which
the fused SDPA kernel cannot add) an L×L score matrix per head; ``Full`` with rotary positions runs in the
fused SDPA kernel (no L×L tensor, memory linear) but still O(L²) time. This script measures the encoder of
``configs/speech/festival.yaml`` (dim 128, depth 4, 4 heads, relative positions) on 1, 10 and 60 minutes of
frames, and ``core.StreamingEncoder`` on the same inputs fed one second (100 frames) at a time.

Method
------
* Input: (1, L, 128) float32 frames (what the input projection would give), ``torch.no_grad()``, eval mode.
* Time: after one warm-up pass, the median wall time of several passes (at least 1 for slow cells; every
  timed pass is listed at the end, to judge the noise). ``--threads`` sets ``torch.set_num_threads``
  (default 1, like the accuracy runs).
* Peak memory: every cell runs in a fresh subprocess (``--one KIND L``) that records its RSS right before
  allocating the input and reports ``ru_maxrss`` (the kernel's high-water mark) at the end minus that
  baseline: the peak growth caused by the input, activations and temporaries.
* A cell whose estimated memory exceeds 90 % of the RAM available now, or whose estimated time (quadratic
  extrapolation from the previous length) exceeds ``--max-cell-seconds``, is not started and shows why.
* The CPU may be shared: the header prints the load average at start and end.

Run: ``.venv/bin/python benchmarks/speech.py`` (``--help`` for options).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere, without installing the package
    sys.path.insert(0, str(ROOT))

from benchmarks.child import run_child  # noqa: E402

DIM, DEPTH, HEADS, MLP_RATIO, MAX_REL = 128, 4, 4, 2.0, 32
LEFT = RIGHT = 32
CHUNK = 100  # streaming: frames per push (one second)
GIB, MIB = 2**30, 2**20
CHILD_TIMEOUT_S = 1200.0
LABELS = {"truncated": "Truncated(±32)", "full": "Full", "full_rotary": "Full, rotary (fused SDPA)",
          "stream": "Truncated(±32), streamed"}


def estimate_bytes(kind: str, length: int) -> float:
    """Rough peak need of one cell, used to skip what cannot fit."""
    activations = 12 * length * DIM * 4  # x, qkv, MLP hidden, outputs, ...
    if kind == "full":  # dense backend: scores, mask, weights (B, H, L, L) at once
        return activations + 3.5 * HEADS * length * length * 4
    if kind == "stream":
        return 64 * MIB
    if kind == "full_rotary":  # fused kernel: no L×L tensor
        return activations
    return activations + 3 * HEADS * length * (2 * MAX_REL + 1) * 4 + 3 * HEADS * (1 << 24) * 4


# --------------------------------------------------------------------------- child side
def _rss() -> int:
    return psutil.Process().memory_info().rss


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def run_one(kind: str, length: int, repeats: int, threads: int, budget_s: float) -> dict:
    import torch

    from core import Encoder, EncoderConfig, Full, StreamingEncoder, Truncated

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    position = "rotary" if kind == "full_rotary" else "relative"
    encoder = Encoder(EncoderConfig(dim=DIM, depth=DEPTH, num_heads=HEADS, mlp_ratio=MLP_RATIO, position=position,
                                    max_relative_distance=MAX_REL))
    encoder.eval()
    pattern = Full() if kind.startswith("full") else Truncated(LEFT, RIGHT)
    base = _rss()
    if kind == "stream":  # the input arrives in pieces: never held whole
        gen = torch.Generator().manual_seed(0)

        def run() -> None:
            streamer = StreamingEncoder(encoder, pattern)
            for start in range(0, length, CHUNK):
                streamer.push(torch.randn(1, min(CHUNK, length - start), DIM, generator=gen))
            streamer.flush()
    else:
        x = torch.randn(1, length, DIM)

        def run() -> None:
            encoder(x, pattern=pattern)

    times = []
    with torch.no_grad():
        t0 = time.perf_counter()
        run()  # warm-up
        first = time.perf_counter() - t0
        for _ in range(max(1, min(repeats, int(budget_s / max(first, 1e-3))))):
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
    return {"kind": kind, "length": length, "median_s": statistics.median(times),
            "times_s": [round(t, 3) for t in times], "peak_growth_bytes": _peak_rss() - base}


# --------------------------------------------------------------------------- parent side
def launch(args: list[str], need_bytes: float, need_s: float | None, max_s: float) -> dict:
    available = psutil.virtual_memory().available
    if need_bytes > 0.9 * available:
        return {"skip": f"— (needs ≈ {need_bytes / GIB:,.0f} GiB)"}
    if need_s is not None and need_s > max_s:
        return {"skip": f"— (≈ {need_s / 60:,.0f} min per pass)"}
    return run_child(__file__, args, CHILD_TIMEOUT_S)


def fmt_s(cell: dict) -> str:
    return f"{cell['result']['median_s']:,.2f}" if "result" in cell else cell.get("skip") or cell["error"]


def fmt_mib(cell: dict) -> str:
    return f"{cell['result']['peak_growth_bytes'] / MIB:,.0f}" if "result" in cell else "—"


def ratio(a: dict, b: dict, key: str) -> str:
    if "result" not in a or "result" not in b or b["result"][key] <= 0:
        return "—"
    return f"{a['result'][key] / b['result'][key]:,.1f}×"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[6_000, 60_000, 360_000])
    parser.add_argument("--kinds", nargs="+", default=["truncated", "full", "full_rotary", "stream"],
                        choices=sorted(LABELS))
    parser.add_argument("--repeats", type=int, default=3, help="timed passes at most (slow cells get fewer)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads in every cell")
    parser.add_argument("--budget", type=float, default=60.0, help="timed seconds per cell beyond which repeats "
                                                                    "are cut (at least one pass)")
    parser.add_argument("--max-cell-seconds", type=float, default=300.0,
                        help="do not start a cell whose estimated pass takes longer")
    parser.add_argument("--one", nargs=2, metavar=("KIND", "L"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.one:  # child: one measurement, one JSON line
        print(json.dumps(run_one(args.one[0], int(args.one[1]), args.repeats, args.threads, args.budget)))
        return

    import torch

    started = time.perf_counter()
    print("# speech encoder: Truncated(±32) vs Full vs streamed, forward only\n")
    print(f"- torch {torch.__version__}, {args.threads} thread(s), {psutil.cpu_count()} cores, "
          f"RAM available {psutil.virtual_memory().available / GIB:.1f} GiB")
    print(f"- date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}, load average at start "
          f"{os.getloadavg()[0]:.2f}")
    print(f"- encoder: dim {DIM}, depth {DEPTH}, {HEADS} heads, MLP ratio {MLP_RATIO}, relative positions "
          f"(±{MAX_REL}); batch 1, float32, no_grad; streamed = core.StreamingEncoder fed {CHUNK} frames "
          "(1 s) per push; peak = RSS growth in a fresh process\n")
    common = ["--repeats", str(args.repeats), "--threads", str(args.threads), "--budget", str(args.budget)]
    rows: dict[tuple[str, int], dict] = {}
    for kind in args.kinds:
        previous: tuple[int, float] | None = None
        for length in sorted(args.lengths):
            need_s = None
            if previous is not None:
                power = 2 if kind.startswith("full") else 1
                need_s = previous[1] * (length / previous[0]) ** power
            cell = launch(["--one", kind, str(length), *common], estimate_bytes(kind, length), need_s,
                          args.max_cell_seconds)
            rows[kind, length] = cell
            if "result" in cell:
                previous = (length, cell["result"]["median_s"])
            print(f"  {LABELS[kind]:<26} L={length:>9,}: {fmt_s(cell)} s, {fmt_mib(cell)} MiB", flush=True)
    print()
    header = ["frames (audio)"] + [f"{LABELS[k]} {what}" for k in args.kinds for what in ("time (s)", "peak MiB")]
    if "truncated" in args.kinds and "full" in args.kinds:
        header += ["time Full/Truncated", "memory Full/Truncated"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---:|" * len(header))
    for length in sorted(args.lengths):
        cells = [f"{length:,} ({length / 6000:g} min)"]
        for kind in args.kinds:
            cells += [fmt_s(rows[kind, length]), fmt_mib(rows[kind, length])]
        if "truncated" in args.kinds and "full" in args.kinds:
            full, trunc = rows["full", length], rows["truncated", length]
            cells += [ratio(full, trunc, "median_s"), ratio(full, trunc, "peak_growth_bytes")]
        print("| " + " | ".join(cells) + " |")
    print()
    per_k = [f"{length:,}: {cell['result']['peak_growth_bytes'] / MIB / (length / 1000):.2f}"
             for length in sorted(args.lengths) if "result" in (cell := rows.get(("truncated", length), {}))]
    if per_k:
        print(f"- {LABELS['truncated']} peak MiB per 1k frames (linear memory: roughly constant): " + ", ".join(per_k))
    streamed = [f"{length:,}: {fmt_mib(cell)} MiB" for length in sorted(args.lengths)
                if "result" in (cell := rows.get(("stream", length), {}))]
    if streamed:
        print(f"- {LABELS['stream']} peak growth (independent of the length): " + ", ".join(streamed))
    spread = [f"{LABELS[k]}@{n:,}: {c['result']['times_s']}" for (k, n), c in rows.items() if "result" in c]
    print("- timed passes (s): " + "; ".join(spread))
    print(f"- total wall time: {time.perf_counter() - started:.0f} s, load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
