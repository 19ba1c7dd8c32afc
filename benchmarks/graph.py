"""One graph-attention layer, forward+backward on CPU: attnlab's edge-masked attention vs PyG convs.

Why: the graph app's layer is ``core.MultiHeadSelfAttention(128, AttentionConfig(num_heads=4, score="dot"))``
under an ``EdgeMask`` (self loops on): a fused qkv Linear, the ``edges`` backend, and the output
projection. PyG's ``TransformerConv(128, 32, heads=4)`` (concat, root_weight) computes the same
kind of layer and is the anchor; ``GATConv(128, 32, heads=4)`` (adds self loops itself) is a second
reference. The target: the attnlab layer at ≤ 1.0× TransformerConv's time and peak memory on a
random graph with 100k nodes and 2M edges.

Method
------
* Graph: ``torch.randint`` edge_index (2, E) over N nodes (seed 0; duplicates and self loops as they
  fall), node features x (N, 128) float32 with ``requires_grad=True``; one timed step is
  ``layer(x, ...)`` then ``out.backward(grad_out)`` with a dense random grad_out, as a following
  layer would send; the gradients of x and of the parameters are computed.
* The attnlab layer gets ``EdgeMask(edge_index)`` built once, outside the timed steps (PyG convs
  likewise get a ready edge_index): the pattern's processing (dedup + self loops + sort by target,
  then the CSR index structures the ``edges`` backend caches on the pattern) happens in the warm-up
  step. Its cost is reported as its own row, measured in a fresh process on a fresh pattern.
* Time: after warm-up steps (two when a step is quick, one when it is slow), the median wall time
  of several steps (``benchmarks/attention.py``'s ``_timed``: at least 3, fewer when slow).
* Peak memory: every layer runs in a fresh subprocess (``--one LAYER``) that records its RSS after
  building the graph, x and the layer, and reports ``ru_maxrss`` at the end minus that baseline:
  the peak growth from pattern processing, activations, gradients and temporaries.
* The CPU may be shared: the header prints the load average at start and end, and the last line
  lists every timed step, to judge the noise.

Run: ``.venv/bin/python benchmarks/graph.py`` (``--nodes 10000 --edges 200000`` for a quick run).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere, without installing the package
    sys.path.insert(0, str(ROOT))

from benchmarks.attention import GIB, MIB, _peak_rss, _rss, _timed  # noqa: E402
from benchmarks.child import run_child  # noqa: E402
from benchmarks.records import cpu_model  # noqa: E402

DIM, HEADS = 128, 4
LAYERS = ("attnlab", "transformerconv", "gatconv")
LABELS = {
    "attnlab": "attnlab MultiHeadSelfAttention (EdgeMask, edges backend)",
    "transformerconv": "PyG TransformerConv(128, 32, heads=4)",
    "gatconv": "PyG GATConv(128, 32, heads=4)",
    "processing": "EdgeMask processing (once per graph, not in the rows above)",
}
CHILD_TIMEOUT_S = 420.0


# --------------------------------------------------------------------------- child side


def make_graph(num_nodes: int, num_edges: int):
    import torch

    g = torch.Generator().manual_seed(0)
    edge_index = torch.randint(0, num_nodes, (2, num_edges), generator=g)
    x = torch.randn(num_nodes, DIM, generator=g)
    grad_out = torch.randn(num_nodes, DIM, generator=g)
    return edge_index, x, grad_out


def make_layer(name: str):
    import torch

    torch.manual_seed(0)
    if name == "attnlab":
        from core import AttentionConfig, MultiHeadSelfAttention

        return MultiHeadSelfAttention(DIM, AttentionConfig(num_heads=HEADS, score="dot"))
    from torch_geometric.nn import GATConv, TransformerConv

    if name == "transformerconv":
        return TransformerConv(DIM, DIM // HEADS, heads=HEADS)
    if name == "gatconv":
        return GATConv(DIM, DIM // HEADS, heads=HEADS)
    raise ValueError(f"unknown layer {name!r}, expected one of {LAYERS}")


def run_one(name: str, num_nodes: int, num_edges: int, repeats: int, threads: int) -> dict:
    """One measurement in this (fresh) process; returns what the parent prints."""
    import torch

    from core import EdgeMask

    torch.set_num_threads(threads)
    edge_index, x, grad_out = make_graph(num_nodes, num_edges)
    x.requires_grad_(True)
    extra = {}
    if name == "processing":  # a fresh pattern each step: dedup + self loops + sort, then the CSR structures
        from core import attend

        q = torch.zeros(num_nodes, HEADS, DIM // HEADS)
        base = _rss()

        def step() -> None:
            pattern = EdgeMask(edge_index)
            pattern.processed(num_nodes)
            with torch.no_grad():  # builds and caches the backend's CSR structures (one tiny attend)
                attend(q, q, q, pattern, backend="edges")
    else:
        layer = make_layer(name)
        pattern = EdgeMask(edge_index) if name == "attnlab" else None
        base = _rss()

        def forward() -> torch.Tensor:
            return layer(x, pattern) if pattern is not None else layer(x, edge_index)

        def step() -> None:
            forward().backward(grad_out)
            x.grad = None
            layer.zero_grad(set_to_none=True)

        if pattern is not None:  # the processing in the warm-up step, timed apart
            t0 = time.perf_counter()
            pattern.processed(num_nodes)
            extra["processed_ms"] = (time.perf_counter() - t0) * 1e3
            extra["processed_edges"] = pattern.processed(num_nodes).size(1)

    times, warmup = _timed(step, repeats)
    return {
        "layer": name, "nodes": num_nodes, "edges": num_edges, "median_ms": statistics.median(times) * 1e3,
        "times_ms": [round(t * 1e3, 1) for t in times], "warmup": warmup,
        "peak_growth_bytes": _peak_rss() - base, "baseline_rss_bytes": base, **extra,
    }


# --------------------------------------------------------------------------- parent side


def launch(args: list[str]) -> dict:
    """Run this script with ``args`` in a fresh interpreter; "result" (the child's JSON) or "error"."""
    return run_child(__file__, args, CHILD_TIMEOUT_S)


def ratio(cell: dict, anchor: dict, key: str) -> str:
    if "result" not in cell or "result" not in anchor or anchor["result"][key] <= 0:
        return "—"
    return f"{cell['result'][key] / anchor['result'][key]:.2f}×"


def row(label: str, cell: dict, anchor: dict | None) -> str:
    if "result" not in cell:
        return f"| {label} | {cell['error']} | — | — | — |"
    r = cell["result"]
    cells = [label, f"{r['median_ms']:,.0f}", f"{r['peak_growth_bytes'] / MIB:,.0f}",
             ratio(cell, anchor, "median_ms") if anchor else "—",
             ratio(cell, anchor, "peak_growth_bytes") if anchor else "—"]
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=100_000)
    parser.add_argument("--edges", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=5, help="timed steps at most (slow ones get >= 3)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--layers", nargs="+", default=list(LAYERS), choices=LAYERS)
    parser.add_argument("--one", metavar="LAYER", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.one:  # child: one measurement, one JSON line
        print(json.dumps(run_one(args.one, args.nodes, args.edges, args.repeats, args.threads)))
        return

    import torch
    import torch_geometric

    started = time.perf_counter()
    common = ["--nodes", str(args.nodes), "--edges", str(args.edges), "--repeats", str(args.repeats),
              "--threads", str(args.threads)]
    print("# one graph-attention layer, forward+backward: attnlab vs PyG\n")
    print(f"- torch {torch.__version__}, torch_geometric {torch_geometric.__version__}, {args.threads} threads, "
          f"CPU: {cpu_model()} ({psutil.cpu_count()} cores), RAM available "
          f"{psutil.virtual_memory().available / GIB:.1f} GiB")
    print(f"- date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}, "
          f"load average at start {os.getloadavg()[0]:.2f}")
    print(f"- random graph: {args.nodes:,} nodes, {args.edges:,} edges (torch.randint, seed 0); x ({args.nodes:,}, "
          f"{DIM}) float32; {HEADS} heads × {DIM // HEADS}; median of repeats after warm-up; "
          "peak = RSS growth in a fresh process per row")

    cells = {name: launch(["--one", name, *common]) for name in args.layers}
    cells["processing"] = launch(["--one", "processing", *common])
    ours = cells.get("attnlab", {}).get("result")
    if ours:
        print(f"- attnlab: EdgeMask keeps {ours['processed_edges']:,} edges (deduplicated + one self loop per "
              f"node); processed() alone took {ours['processed_ms']:,.0f} ms")
    print()
    anchor = cells.get("transformerconv")
    print("| layer | median ms fwd+bwd | peak MiB | time ratio vs TransformerConv | memory ratio vs TransformerConv |")
    print("|---|---:|---:|---:|---:|")
    for name in (*args.layers, "processing"):
        print(row(LABELS[name], cells[name], anchor if name != "processing" else None))
    print()
    spread = [f"{name}: {cell['result']['times_ms']}" for name, cell in cells.items() if "result" in cell]
    print("- timed steps (ms), to judge the noise: " + "; ".join(spread))
    print(f"- total wall time: {time.perf_counter() - started:.0f} s, load average at end "
          f"{os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
