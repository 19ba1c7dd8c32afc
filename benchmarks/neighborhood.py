"""2-D neighbourhood attention over a ViT's patch grid: the ``neighborhood`` backend vs SDPA with the pattern as a
dense mask (the anchor) and vs ``dense`` (CPU, forward+backward).

Why: ``Neighborhood2D(radius)`` lets each patch see its (2·radius+1)² window plus the class token, so the
``neighborhood`` backend costs O(N·(k² + prefix)) time and memory, while ``sdpa`` hands
``scaled_dot_product_attention`` an (N, N) boolean mask: O(N²). Grids 32×32 (1,025 tokens with the class token)
and 64×64 (4,097 tokens), radius 1 and 2.

Method: q, k, v (1, 4 heads, N, 64) float32 with gradients; one step is ``attend(...)`` then ``backward`` of a
dense random gradient; the median wall time of several steps after warm-up; peak memory is the growth of the
process's high-water RSS, each (backend, grid, radius) in a fresh subprocess so allocator caches do not leak
between cells. Ratios are against ``sdpa`` measured in the same run.

Run: ``.venv/bin/python benchmarks/neighborhood.py --threads 1``
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from records import cpu_model

ROOT = Path(__file__).resolve().parents[1]
HEADS, HEAD_DIM, PREFIX = 4, 64, 1
BACKENDS = ("neighborhood", "sdpa", "dense")


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def run_one(backend: str, grid: int, radius: int, repeats: int, threads: int) -> dict:
    """One cell in this (fresh) process."""
    import torch

    from core import Neighborhood2D, attend

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    pattern = Neighborhood2D(radius, (grid, grid), PREFIX)
    tokens = PREFIX + grid * grid
    base = _rss_bytes()
    q, k, v = (torch.randn(1, HEADS, tokens, HEAD_DIM, requires_grad=True) for _ in range(3))
    grad_out = torch.randn(1, HEADS, tokens, HEAD_DIM)
    times = []
    for i in range(repeats + 2):  # two warm-up steps
        start = time.perf_counter()
        attend(q, k, v, pattern=pattern, backend=backend).backward(grad_out)
        if i >= 2:
            times.append(time.perf_counter() - start)
        q.grad = k.grad = v.grad = None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"backend": backend, "grid": grid, "radius": radius, "tokens": tokens,
            "median_ms": statistics.median(times) * 1e3, "peak_growth_mib": max(peak - base, 0) / 2**20}


def launch(backend: str, grid: int, radius: int, repeats: int, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--one", backend, str(grid), str(radius), "--repeats", str(repeats),
           "--threads", str(threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT)})
    if done.returncode:
        return {"backend": backend, "grid": grid, "radius": radius, "error": done.stderr.strip().splitlines()[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grids", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--radii", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per cell (median)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--one", nargs=3, metavar=("BACKEND", "GRID", "RADIUS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        backend, grid, radius = args.one
        print(json.dumps(run_one(backend, int(grid), int(radius), args.repeats, args.threads)))
        return
    print(f"# {time.strftime('%Y-%m-%d')}, {cpu_model()}, {args.threads} thread(s), "
          f"forward+backward, (1, {HEADS} heads, N, {HEAD_DIM}) float32, class token + grid²\n")
    print("| grid (tokens) | radius | backend | median ms | × sdpa time | peak MiB | × sdpa memory |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for grid in args.grids:
        for radius in args.radii:
            cells = {b: launch(b, grid, radius, args.repeats, args.threads) for b in BACKENDS}
            anchor = cells["sdpa"]
            for backend, cell in cells.items():
                if "error" in cell:
                    print(f"| {grid}×{grid} | {radius} | {backend} | failed: {cell['error']} | | | |")
                    continue
                time_ratio = mem_ratio = ""
                if "error" not in anchor:
                    time_ratio = f"{cell['median_ms'] / anchor['median_ms']:.2f}"
                    mem_ratio = f"{cell['peak_growth_mib'] / max(anchor['peak_growth_mib'], 1e-9):.2f}"
                print(f"| {grid}×{grid} ({cell['tokens']}) | {radius} | {backend} | {cell['median_ms']:.1f} | "
                      f"{time_ratio} | {cell['peak_growth_mib']:.0f} | {mem_ratio} |", flush=True)


if __name__ == "__main__":
    main()
