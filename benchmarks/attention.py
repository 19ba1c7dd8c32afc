"""Banded truncated attention vs SDPA with a dense boolean mask and vs ``dense`` (CPU, forward+backward).

Why: a ``Truncated(left=64, right=64)`` pattern lets each query see 129 keys, so the
``banded`` backend costs O(L·w) time and memory, while the ``sdpa`` backend, the anchor,
materialises the pattern as a dense (L, L) boolean mask and hands it to
``torch.nn.functional.scaled_dot_product_attention``: O(L²). This script shows how far
apart they are for L = 1k .. 64k, and that the banded backend runs 1M frames forward-only.
A second table does the same with relative-position scores (``RelativePositionBias``, max distance
64), which SDPA cannot add: banded against the ``dense`` reference formula with the same scores.
Both tables also time the banded kernel as it was before the fused rewrite
(``benchmarks/reference_banded.py``, benchmark-only), and a last section runs
``benchmarks/festival_speed.py``: the festival config's training throughput with the new and the
reference kernel, measured as a ratio in one process.

Method
------
* Inputs: q, k, v of shape (1, 4 heads, L, 64), float32, ``requires_grad=True``.
  One timed step is ``out = attend(...)`` then ``out.backward(grad_out)`` with a dense random
  ``grad_out``, as a following layer would send. (``out.sum().backward()`` would send an
  expanded, stride-0 gradient, for which ``bmm``'s backward falls back to one small matmul per
  (head, block): ~8 ops per block, which inflates the banded times, badly so on a busy CPU.)
* Time: after warm-up steps (two when a step is quick, one when it is slow), the median
  wall time of several steps. Slow configurations get fewer steps (at least 3), so the
  whole run stays within a few minutes on 2 cores.
* Peak memory: every (backend, L) runs in a fresh subprocess (``--one BACKEND L``) that
  prints one JSON line. It records its RSS right before allocating the inputs, and reports
  ``ru_maxrss`` (the kernel's high-water mark of the process's RSS) at the end minus that
  baseline: the peak growth caused by inputs, activations, gradients and temporaries.
  A fresh process per measurement keeps one configuration's allocator cache and high-water
  mark from leaking into the next one.
* A configuration whose estimated need exceeds the RAM available right now is not started
  ("— (needs ≈ X GiB)"); a subprocess that dies (OOM-killed, exception) shows
  "failed (exit code …)". The benchmark itself never crashes.
* The sdpa estimate is ≈ 8.5 bytes per (L, L) entry: ``Truncated.mask`` builds one boolean
  (L, L) band in place (1 B), ``sdpa`` ORs it with the empty-row mask (1 B more), and the fused
  CPU SDPA kernel, which never holds the (L, L) float scores, converts the mask to float for
  forward+backward (measured ≈ 6.4 B/entry given a ready bool mask).
* The CPU may be shared: the header prints the load average at start and end, and the last
  lines list every timed step, to judge the noise.

Run: ``.venv/bin/python benchmarks/attention.py`` (``--help`` for options).
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
from collections.abc import Callable
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere, without installing the package
    sys.path.insert(0, str(ROOT))

from benchmarks.child import run_child  # noqa: E402
from benchmarks.records import cpu_model  # noqa: E402

HEADS, HEAD_DIM, BATCH = 4, 64, 1
LEFT, RIGHT = 64, 64
MAX_RELATIVE = 64  # relative-position table of the second table: every distance in the band has its own row
BYTES = 4  # float32
GIB, MIB = 2**30, 2**20
STEP_BUDGET_S = 40.0  # timed seconds per configuration beyond which repeats are cut (min 3)
CHILD_TIMEOUT_S = 420.0
FESTIVAL_TIMEOUT_S = 1800.0
MIN_REPEATS = 3


# --------------------------------------------------------------------------- estimates


def estimate_bytes(backend: str, length: int, forward_only: bool = False) -> float:
    """Rough peak-memory need of one measurement (inputs included), used to skip what cannot fit."""
    tensor = BATCH * HEADS * length * HEAD_DIM * BYTES  # one of q, k, v, out
    if backend == "sdpa":
        return 8 * tensor + 8.5 * length * length  # see the module docstring
    if backend == "dense+rel":  # scores, gathered terms, sum, masked, exp, weights, grads: ~8 (H, L, L) floats
        return 8 * tensor + (8 * BATCH * HEADS * BYTES + 10) * length * length  # + the (L, L) index and mask
    if forward_only:  # q, k, v, their padded copies, the output chunks and their concatenation
        return 8 * tensor + 3 * BATCH * HEADS * (1 << 24) * BYTES  # + a few chunk-sized score tiles
    span = 64 + LEFT + RIGHT  # the default block for a 129-wide window is 64
    return 8 * tensor + 10 * BATCH * HEADS * length * span * BYTES  # + ~10 score-tile-sized tensors


# --------------------------------------------------------------------------- child side


def _rss() -> int:
    return psutil.Process().memory_info().rss


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _timed(step: Callable[[], None], repeats: int) -> tuple[list[float], int]:
    """Warm up, then time ``step``; returns (times in seconds, warm-up steps)."""
    t0 = time.perf_counter()
    step()
    first = time.perf_counter() - t0
    warmup = 1
    if first < 2.0:  # fresh pages are slow to fault in on this VM: a second warm-up step is cheap here
        step()
        warmup = 2
    n = max(MIN_REPEATS, min(repeats, int(STEP_BUDGET_S / max(first, 1e-3))))
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times, warmup


def run_one(backend: str, length: int, repeats: int, threads: int, forward_only: bool,
            block: int | None = None) -> dict:
    """One measurement in this (fresh) process; returns what the parent prints."""
    import torch

    import core
    from benchmarks.reference_banded import banded_attention as reference_banded
    from core import RelativePositionBias, Truncated
    from core.backends.banded import banded_attention
    from core.scores import Scoring

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    pattern = Truncated(LEFT, RIGHT)
    kernel, _, score = backend.partition("+")
    relative = RelativePositionBias(HEAD_DIM, MAX_RELATIVE) if score == "rel" else None
    scoring = Scoring(scale=HEAD_DIM**-0.5, relative=relative)

    base = _rss()
    q, k, v = (torch.randn(BATCH, HEADS, length, HEAD_DIM, requires_grad=not forward_only) for _ in range(3))
    grad_out = None if forward_only else torch.randn(BATCH, HEADS, length, HEAD_DIM)

    def attention() -> torch.Tensor:
        if kernel == "reference":
            return reference_banded(q, k, v, LEFT, RIGHT, None, scoring)
        if block is not None:
            return banded_attention(q, k, v, LEFT, RIGHT, None, scoring, block=block)
        return core.attend(q, k, v, pattern=pattern, backend=kernel, relative=relative)

    def step() -> None:
        if forward_only:
            with torch.no_grad():
                attention()
        else:
            attention().backward(grad_out)  # dense, as from a following layer (not sum()'s stride-0 grad)
            for t in (q, k, v):
                t.grad = None

    times, warmup = _timed(step, repeats)
    return {
        "backend": backend, "length": length, "forward_only": forward_only, "block": block,
        "median_ms": statistics.median(times) * 1e3, "times_ms": [round(t * 1e3, 1) for t in times],
        "warmup": warmup, "peak_growth_bytes": _peak_rss() - base, "baseline_rss_bytes": base,
    }


def run_check(length: int, threads: int) -> dict:
    """Sanity (not a test): banded and sdpa agree on outputs and input gradients."""
    import torch

    import core
    from core import Truncated

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    inputs = [torch.randn(BATCH, HEADS, length, HEAD_DIM) for _ in range(3)]
    results = {}
    for backend in ("banded", "sdpa"):
        q, k, v = (t.clone().requires_grad_() for t in inputs)
        out = core.attend(q, k, v, pattern=Truncated(LEFT, RIGHT), backend=backend)
        out.square().sum().backward()
        results[backend] = (out.detach(), q.grad, k.grad, v.grad)
    diffs = [float((a - b).abs().max()) for a, b in zip(*results.values(), strict=True)]
    return {"length": length, "out": diffs[0], "grad": max(diffs[1:])}


# --------------------------------------------------------------------------- parent side


def launch(args: list[str], need_bytes: float | None = None) -> dict:
    """Run this script with ``args`` in a fresh interpreter; always returns a dict.

    Keys: "result" (the child's JSON) or "skip" / "error" (a short text for the table).
    """
    if need_bytes is not None:
        available = psutil.virtual_memory().available
        if need_bytes > 0.9 * available:
            return {"skip": f"— (needs ≈ {need_bytes / GIB:.0f} GiB)", "need": need_bytes}
    return run_child(__file__, args, CHILD_TIMEOUT_S)


def fmt_ms(cell: dict) -> str:
    if "result" in cell:
        return f"{cell['result']['median_ms']:,.1f}"
    return cell.get("skip") or cell["error"]


def fmt_mib(cell: dict) -> str:
    if "result" in cell:
        return f"{cell['result']['peak_growth_bytes'] / MIB:,.1f}"
    return "—"


def ratio(a: dict, b: dict, key: str) -> str:
    if "result" not in a or "result" not in b or b["result"][key] <= 0:
        return "—"
    return f"{a['result'][key] / b['result'][key]:,.1f}×"


def table_row(label: str, banded: dict, reference: dict, anchor: dict) -> str:
    cells = [label, fmt_ms(banded), fmt_ms(reference), fmt_ms(anchor), ratio(anchor, banded, "median_ms"),
             ratio(reference, banded, "median_ms"), fmt_mib(banded), fmt_mib(reference), fmt_mib(anchor),
             ratio(anchor, banded, "peak_growth_bytes")]
    return "| " + " | ".join(cells) + " |"


def print_table(rows: dict, lengths: list[int], score: str, anchor: str, extra: list[str]) -> None:
    """One markdown table: the new banded kernel, the reference (old) kernel and the anchor, per L."""
    print(f"| L | banded (ms) | old banded (ms) | {anchor} (ms) | {anchor}/banded | old/banded "
          f"| banded peak MiB | old peak MiB | {anchor} peak MiB | memory {anchor}/banded |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for length in lengths:
        print(table_row(f"{length:,}", rows[f"banded{score}", length], rows[f"reference{score}", length],
                        rows[f"{anchor}{score}", length]))
    for line in extra:
        print(line)
    print()


def festival_table(result: dict) -> str:
    """The festival child's JSON as a small markdown table plus its ratio line."""
    lines = [f"- {result['config']}: {result['steps']} timed training steps per round after "
             f"{result['warmup']} warm-up, {result['rounds']} rounds alternating the kernels, "
             f"{result['frames_per_step']:,.0f} real frames per step on average",
             "", "| kernel | frames/s (median of rounds) | every round |", "|---|---:|---|"]
    for name in ("new", "old"):
        rounds = ", ".join(f"{r:,.0f}" for r in result[f"{name}_frames_per_s"])
        lines.append(f"| {name} banded | {result[f'{name}_median']:,.0f} | {rounds} |")
    lines += ["", f"- throughput ratio new/old: **{result['ratio']:.2f}×** (per round: "
              f"{', '.join(f'{r:.2f}' for r in result['round_ratios'])})"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 16384, 65536])
    parser.add_argument("--relative-lengths", type=int, nargs="*", default=[1024, 4096, 16384, 65536],
                        help="lengths of the relative-position table (none: skip it)")
    parser.add_argument("--festival-steps", type=int, default=30,
                        help="timed training steps per kernel and round of the festival throughput (0 skips)")
    parser.add_argument("--repeats", type=int, default=7, help="timed steps at most (slow ones get >= 3)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--forward-only-length", type=int, default=1_048_576,
                        help="banded forward-only (no_grad) extra row; 0 skips it")
    parser.add_argument("--markdown", action=argparse.BooleanOptionalAction, default=True,
                        help="markdown table (--no-markdown: plain JSON lines)")
    parser.add_argument("--block-sweep", type=int, nargs="*", default=None, metavar="B",
                        help="also time banded_attention(block=B) at the largest length <= 16384")
    parser.add_argument("--one", nargs=2, metavar=("BACKEND", "L"), help=argparse.SUPPRESS)
    parser.add_argument("--forward-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--block", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--check", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    import torch

    threads = args.threads or torch.get_num_threads()
    if args.one:  # child: one measurement, one JSON line
        result = run_one(args.one[0], int(args.one[1]), args.repeats, threads, args.forward_only, args.block)
        print(json.dumps(result))
        return
    if args.check is not None:
        print(json.dumps(run_check(args.check, threads)))
        return

    started = time.perf_counter()
    common = ["--repeats", str(args.repeats), "--threads", str(threads)]
    lengths = sorted(args.lengths)
    print("# banded truncated attention: vs SDPA with a dense boolean mask, vs dense with relative scores\n")
    thread_s = "thread" if threads == 1 else "threads"
    print(f"- torch {torch.__version__}, {threads} {thread_s}, CPU: {cpu_model()} "
          f"({psutil.cpu_count()} cores), RAM available {psutil.virtual_memory().available / GIB:.1f} GiB")
    print(f"- date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}, "
          f"load average at start {os.getloadavg()[0]:.2f}")
    if threads > 1 and os.getloadavg()[0] > 1.0:
        print("- note: the CPU may be shared. With several threads, the banded backend's many small ops "
              "stall on descheduled OpenMP peers, so its times inflate far more than sdpa's "
              "(compare with --threads 1)")
    print(f"- pattern Truncated(left={LEFT}, right={RIGHT}), batch {BATCH}, {HEADS} heads × head_dim "
          f"{HEAD_DIM}, float32, forward+backward; median of repeats after warm-up; "
          "peak = RSS growth in a fresh process")

    check = launch(["--check", str(lengths[0]), "--threads", str(threads)])
    if "result" in check:
        c = check["result"]
        print(f"- sanity at L={c['length']}: max |banded - sdpa| output {c['out']:.2e}, "
              f"input grads {c['grad']:.2e}")
    else:
        print(f"- sanity at L={lengths[0]}: {check.get('error')}")
    print()

    rows: dict[tuple[str, int], dict] = {}
    measured = [(b, length) for length in lengths for b in ("banded", "reference", "sdpa")]
    measured += [(b, length) for length in args.relative_lengths for b in ("banded+rel", "reference+rel", "dense+rel")]
    for backend, length in measured:
        rows[backend, length] = launch(["--one", backend, str(length), *common], estimate_bytes(backend, length))
        line = json.dumps({"backend": backend, "length": length, **rows[backend, length]})
        print(line, file=sys.stdout if not args.markdown else sys.stderr, flush=True)  # progress
    fwd_len = args.forward_only_length
    extra = []
    if fwd_len:
        fwd = launch(["--one", "banded", str(fwd_len), "--forward-only", *common],
                     estimate_bytes("banded", fwd_len, forward_only=True))
        rows["banded-fwd", fwd_len] = fwd
        sdpa_need = estimate_bytes("sdpa", fwd_len, forward_only=True)
        skipped = {"skip": f"— (needs ≈ {sdpa_need / GIB:,.0f} GiB)"}
        extra.append(table_row(f"{fwd_len:,} (forward only, no_grad)", fwd, {"skip": "not run"}, skipped))

    if args.markdown:
        print("## plain dot product: banded vs SDPA with a dense boolean mask\n")
        print_table(rows, lengths, "", "sdpa", extra)
        if args.relative_lengths:
            print(f"## relative-position scores (max distance {MAX_RELATIVE}): banded vs dense, same scores\n")
            print_table(rows, args.relative_lengths, "+rel", "dense", [])

    per_k = [f"L={length:,}: {cell['result']['peak_growth_bytes'] / MIB / (length / 1024):.2f}"
             for length in lengths if "result" in (cell := rows["banded", length])]
    line = "- banded memory per 1k frames (MiB, fwd+bwd): " + ", ".join(per_k)
    if fwd_len and "result" in rows["banded-fwd", fwd_len]:
        fwd = rows["banded-fwd", fwd_len]["result"]["peak_growth_bytes"] / MIB / (fwd_len / 1024)
        line += f"; forward-only at L={fwd_len:,}: {fwd:.2f}"
    print(line)
    spread = [f"{key[0]}@{key[1]}: {cell['result']['times_ms']}" for key, cell in rows.items()
              if "result" in cell and len(cell["result"]["times_ms"]) > 1]
    print("- timed steps (ms), to judge the noise: " + "; ".join(spread))

    if args.block_sweep is not None:
        blocks = args.block_sweep or [16, 32, 64, 128]
        sweep_len = max([length for length in lengths if length <= 16384] or [lengths[0]])
        cells = []
        for block in blocks:
            cell = launch(["--one", "banded", str(sweep_len), "--block", str(block), *common],
                          estimate_bytes("banded", sweep_len))
            cells.append(f"block {block}: {fmt_ms(cell)} ms / {fmt_mib(cell)} MiB")
        print(f"- banded_attention block sweep at L={sweep_len:,} (fwd+bwd median): " + "; ".join(cells))

    if args.festival_steps:
        print("\n## festival training throughput, new vs old banded kernel (one process)\n")
        festival = run_child(str(ROOT / "benchmarks" / "festival_speed.py"),
                             ["--steps", str(args.festival_steps), "--threads", str(threads)], FESTIVAL_TIMEOUT_S)
        if "result" in festival:
            print(festival_table(festival["result"]))
        else:
            print(f"- festival throughput: {festival['error']}")

    print(f"- total wall time: {time.perf_counter() - started:.0f} s, load average at end "
          f"{os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
