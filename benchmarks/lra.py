"""Long-Range-Arena-style comparison of the efficient attention family, trained with our own code (CPU).

Why: the "xx-formers" trade exactness for speed and memory. LRA (Tay et al. 2021) compares them by
score, speed and memory on the same tasks; this script does the same for every variant in ``core``:
full softmax, local (Truncated), strided, Longformer, Big Bird, linear attention, Performer, Linformer.

Two parts, every cell in a fresh subprocess (``--train TASK VARIANT`` / ``--speed VARIANT L``):

* **Train**: ``apps.lra.LRAClassifier`` (dim 64, 2 layers, 4 heads, MLP ratio 2, mean pooling) on ListOps
  (our generator) and byte-level EWT genre passages, the same budget for every variant: ``--steps``
  AdamW steps of ``--batch`` sequences (lr 2e-3, 10 % warmup, cosine), the same data order (seed 0).
  Reported: test accuracy (micro, all test examples), train steps/s (median step time after 3 warm-up
  steps), peak memory = the process's peak RSS (VmHWM, reset after loading the data) minus its RSS then,
  i.e. model, activations, gradients, optimizer state and temporaries.
* **Speed**: one ``MultiHeadSelfAttention(dim=256, heads=4)`` layer, forward + backward of x (1, L, 256) with a
  dense random output gradient, at L = 1k, 2k, 4k: median step time and peak-RSS growth over the RSS
  after building the layer and the input (VmHWM reset there). "full (dense)" is the textbook softmax that
  materialises the L×L scores (LRA's vanilla Transformer); "full (sdpa)" is PyTorch's fused CPU kernel,
  which never holds them (memory O(L·d) like the linear methods, time still O(L²)).

Memory comes from a separate short run of the same cell (``--memory-steps`` steps) with glibc's mmap
threshold fixed at 64 KiB (``MALLOC_MMAP_THRESHOLD_``): freed tensors then leave the process at once, so
peak RSS is the peak of live memory rather than of glibc's heap, whose high-water mark depends on
fragmentation (tracemalloc would not see torch's allocations at all). Times come from the normal runs.
The peak mark is reset (``/proc/self/clear_refs``) once the cell is set up: ``ru_maxrss`` cannot be reset
and would report the start-up's transient peak (imports) instead of the cell's when that one is smaller.

The table header records the budget, threads and load average; the figure (``--figure``) is LRA's scatter:
x = training steps/s, y = mean test accuracy over the tasks, circle area = peak memory.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/lra.py`` (≈ 47 min on one core; ``--help``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere, without installing the package
    sys.path.insert(0, str(ROOT))

from benchmarks.attention import MIB, _rss, _timed  # noqa: E402
from benchmarks.records import cpu_model  # noqa: E402

WINDOW, STRIDE, BLOCK, FEATURES = 32, 64, 64, 64
LR = 2e-3
# name -> (pattern spec, kernel); patterns are built in the child (class name, keyword args)
VARIANTS: dict[str, tuple[tuple[str, dict], str]] = {
    "full": (("Full", {}), "softmax"),
    "local": (("Truncated", {"left": WINDOW, "right": WINDOW}), "softmax"),
    "strided": (("Strided", {"stride": 32}), "softmax"),
    "longformer": (("Longformer", {"window": WINDOW, "stride": STRIDE, "global_tokens": 1}), "softmax"),
    "bigbird": (("BigBird", {"window": WINDOW, "global_tokens": 1, "random_blocks": 2, "block_size": BLOCK}),
                "softmax"),
    "linear": (("Full", {}), "linear"),
    "performer": (("Full", {}), "performer"),
    "linformer": (("Full", {}), "linformer"),
}
LABELS = {
    "full": "Full (softmax, sdpa)", "full-dense": "Full (softmax, dense L×L)",
    "local": f"Local: Truncated({WINDOW}, {WINDOW})", "strided": "Strided(32)",
    "longformer": f"Longformer(window={WINDOW}, stride={STRIDE}, global=1)",
    "bigbird": f"BigBird(window={WINDOW}, global=1, random=2×{BLOCK})",
    "linear": "Linear (elu+1)", "performer": f"Performer (FAVOR+, {FEATURES} features)",
    "linformer": f"Linformer (k={FEATURES})",
}
SPEED_VARIANTS = ["full-dense", *VARIANTS]
TASKS = {"listops": "ListOps", "text": "Text (EWT genre, bytes)"}
CHILD_TIMEOUT_S = 600.0


def reset_peak() -> None:
    """Set the kernel's peak-RSS mark (VmHWM) to the current RSS (Linux >= 4.0), so the start-up of the process
    (imports, data loading: transient peaks above the later RSS) does not count as the measured cell's peak."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_rss() -> int:
    """VmHWM in bytes: the highest RSS since ``reset_peak``."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def build_pattern(spec: tuple[str, dict]):
    import core

    name, kwargs = spec
    return getattr(core, name)(**kwargs)


# --------------------------------------------------------------------------- data (parent, cached)


def prepare_data(task: str, args: argparse.Namespace, cache: Path) -> Path:
    """Generate/read the task once and save (train, test) token lists for the children."""
    import torch

    from apps.runs import save_atomic

    path = cache / f"{task}.pt"
    if path.is_file():
        return path
    if task == "listops":
        from datamodules.listops import ListOps

        dm = ListOps(min_len=args.listops_min, max_len=args.listops_max, num_train=args.train_examples,
                     num_val=1, num_test=args.test_examples, seed=0)
    else:
        from datamodules.bytetext import ByteText

        dm = ByteText(max_len=args.text_len, max_train=args.train_examples, max_eval=args.test_examples, seed=0)
    dm.setup()
    data = {split: (dm.datasets[split].sequences, dm.datasets[split].labels) for split in ("train", "test")}
    blob = {"data": data, "vocab_size": dm.vocab_size, "num_classes": dm.num_classes}
    save_atomic(path, lambda tmp: torch.save(blob, tmp))  # a killed run leaves no half cache file
    return path


# --------------------------------------------------------------------------- children


def train_one(task_file: str, variant: str, steps: int, batch: int, max_length: int, evaluate: bool = True) -> dict:
    import torch

    from apps.base import lr_factor
    from apps.lra import LRA_ENCODER, LRAClassifier
    from core import KernelConfig
    from datamodules.sequences import pad_collate

    torch.set_num_threads(1)
    blob = torch.load(task_file, weights_only=True)  # tensors, lists and ints only: no code from a cache file
    (train_x, train_y), (test_x, test_y) = blob["data"]["train"], blob["data"]["test"]
    base = _rss()
    reset_peak()
    torch.manual_seed(0)
    pattern_spec, kernel = VARIANTS[variant]
    encoder = LRA_ENCODER.replace(dim=64, depth=2, num_heads=4, mlp_ratio=2.0, dropout=0.1,
                                  kernel=KernelConfig(kernel, num_features=FEATURES, max_length=max_length))
    model = LRAClassifier(blob["vocab_size"], blob["num_classes"], encoder=encoder,
                          pattern=build_pattern(pattern_spec), pool="mean")
    optimizer = torch.optim.AdamW(model.parameter_groups(), lr=LR)
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, warmup_steps=warmup, total_steps=steps))
    order = torch.Generator().manual_seed(0)
    perm: list[int] = []
    step_times, losses = [], []
    longest = sorted(range(len(train_x)), key=lambda i: -len(train_x[i]))[:batch]
    model.train()
    for _ in range(steps):
        if len(perm) < batch:
            perm += torch.randperm(len(train_x), generator=order).tolist()
        idx, perm = perm[:batch], perm[batch:]
        if not evaluate:  # a memory run: the worst case, the longest training sequences, at every step
            idx = longest
        tokens, mask, labels = pad_collate([(train_x[i], train_y[i]) for i in idx])
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(tokens, mask), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        step_times.append(time.perf_counter() - t0)
        losses.append(loss.item())
    train_peak = peak_rss() - base
    model.eval()
    correct = 0
    if not evaluate:
        test_x = test_x[:0]
    with torch.no_grad():
        for b0 in range(0, len(test_x), 32):
            items = [(test_x[i], test_y[i]) for i in range(b0, min(b0 + 32, len(test_x)))]
            tokens, mask, labels = pad_collate(items)
            correct += int((model(tokens, mask).argmax(-1) == labels).sum())
    timed = step_times[3:] or step_times
    return {"task": Path(task_file).stem, "variant": variant, "accuracy": correct / max(len(test_x), 1),
            "steps_per_s": 1.0 / statistics.median(timed), "train_s": sum(step_times),
            "peak_bytes": train_peak, "final_loss": statistics.mean(losses[-10:]),
            "majority": max(test_y.bincount().tolist()) / len(test_y)}


def speed_one(variant: str, length: int, repeats: int = 5) -> dict:
    import torch

    from core import AttentionConfig, KernelConfig, MultiHeadSelfAttention

    torch.set_num_threads(1)
    torch.manual_seed(0)
    dense = variant == "full-dense"
    pattern_spec, kernel = VARIANTS["full" if dense else variant]
    attention = AttentionConfig(num_heads=4, kernel=KernelConfig(kernel, num_features=FEATURES, max_length=length),
                                backend="dense" if dense else "auto")
    layer = MultiHeadSelfAttention(256, attention)
    pattern = build_pattern(pattern_spec)
    x = torch.randn(1, length, 256, requires_grad=True)
    grad_out = torch.randn(1, length, 256)
    base = _rss()
    reset_peak()

    def step() -> None:
        layer(x, pattern=pattern).backward(grad_out)
        x.grad = None
        layer.zero_grad(set_to_none=True)

    if repeats < 3:  # a memory run: just the steps
        t0 = time.perf_counter()
        for _ in range(repeats):
            step()
        times = [(time.perf_counter() - t0) / repeats]
    else:
        times, _ = _timed(step, repeats)
    return {"variant": variant, "length": length, "median_ms": statistics.median(times) * 1e3,
            "peak_bytes": peak_rss() - base}


# --------------------------------------------------------------------------- parent


def launch(args: list[str], memory: bool = False) -> dict:
    """This script with ``args`` in a fresh interpreter (one thread); the child's JSON or an error.

    ``memory``: glibc's mmap threshold fixed at 64 KiB, so every freed tensor goes back to the OS at once and
    the peak RSS is the peak of live memory, not the high-water mark of a fragmented heap (glibc otherwise
    raises the threshold to 32 MiB and keeps freed tensors in its heap). Page faults on every large
    allocation make such a run slow, so times come from runs without it."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if memory:
        env["MALLOC_MMAP_THRESHOLD_"] = str(64 * 1024)
    try:
        proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                              timeout=CHILD_TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout > {CHILD_TIMEOUT_S:.0f} s"}
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no stderr)"]
        print(f"  [{' '.join(args)}] exit {proc.returncode}: {tail[0]}", file=sys.stderr)
        return {"error": f"exit code {proc.returncode}"}
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"error": "no result"}


def draw(results: dict[str, dict[str, dict]], variants: list[str], tasks: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    points = []
    for v in variants:
        cells = [results[t][v] for t in tasks if "accuracy" in results[t].get(v, {})]
        if len(cells) != len(tasks):
            continue
        speed = statistics.mean(c["steps_per_s"] for c in cells)
        score = 100 * statistics.mean(c["accuracy"] for c in cells)
        mem = statistics.mean(c["peak_bytes"] for c in cells) / MIB
        points.append((v, speed, score, mem))
    biggest = max((p[3] for p in points), default=1.0)
    for v, speed, score, mem in points:
        ax.scatter(speed, score, s=60 + 2400 * mem / biggest, alpha=0.45)
        ax.annotate(f"{v}\n{mem:,.0f} MiB", (speed, score), ha="center", va="center", fontsize=8)
    ax.set_xlabel("training speed (steps/s, CPU, 1 thread)")
    ax.set_ylabel(f"mean test accuracy (%) over {', '.join(tasks)}")
    ax.set_title("Efficient attention, LRA-style (circle area = peak training memory)")
    ax.grid(alpha=0.3)
    ax.margins(0.15)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=800, help="optimizer steps per variant and task")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--train-examples", type=int, default=2000)
    parser.add_argument("--test-examples", type=int, default=250)
    parser.add_argument("--listops-min", type=int, default=500)
    parser.add_argument("--listops-max", type=int, default=1000)
    parser.add_argument("--text-len", type=int, default=1024)
    parser.add_argument("--speed-lengths", type=int, nargs="*", default=[1024, 2048, 4096])
    parser.add_argument("--figure", type=Path, default=ROOT / "docs" / "figures" / "lra.png")
    parser.add_argument("--cache", type=Path, default=None, help="folder for the generated data (default: temp)")
    parser.add_argument("--train", nargs=2, metavar=("TASK_FILE", "VARIANT"), help=argparse.SUPPRESS)
    parser.add_argument("--speed", nargs=2, metavar=("VARIANT", "L"), help=argparse.SUPPRESS)
    parser.add_argument("--max-length", type=int, default=2048, help=argparse.SUPPRESS)
    parser.add_argument("--memory-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--memory-steps", type=int, default=3, help="steps of the separate memory runs")
    args = parser.parse_args(argv)

    if args.train:
        print(json.dumps(train_one(args.train[0], args.train[1], args.steps, args.batch, args.max_length,
                                   evaluate=not args.memory_only)))
        return
    if args.speed:
        print(json.dumps(speed_one(args.speed[0], int(args.speed[1]), 2 if args.memory_only else 5)))
        return

    started, load0 = time.perf_counter(), os.getloadavg()
    cache = args.cache or Path(tempfile.mkdtemp(prefix="lra_bench_"))
    cache.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, dict]] = {t: {} for t in args.tasks}
    for task in args.tasks:
        data = prepare_data(task, args, cache)
        max_length = (args.listops_max if task == "listops" else args.text_len) + 1
        for v in args.variants:
            r = launch(["--train", str(data), v, "--steps", str(args.steps), "--batch", str(args.batch),
                        "--max-length", str(max_length)])
            m = launch(["--train", str(data), v, "--steps", str(args.memory_steps), "--batch", str(args.batch),
                        "--max-length", str(max_length), "--memory-only"], memory=True)
            if "peak_bytes" in r:
                r["heap_peak_bytes"], r["peak_bytes"] = r["peak_bytes"], m.get("peak_bytes", float("nan"))
            results[task][v] = r
            print(f"  train {task:8s} {v:11s} {json.dumps(r)}", file=sys.stderr, flush=True)
    speed: dict[str, dict[int, dict]] = {v: {} for v in SPEED_VARIANTS if v == "full-dense" or v in args.variants}
    for length in args.speed_lengths:
        for v in speed:
            speed[v][length] = r = launch(["--speed", v, str(length)])
            m = launch(["--speed", v, str(length), "--memory-only"], memory=True)
            if "peak_bytes" in r:
                r["heap_peak_bytes"], r["peak_bytes"] = r["peak_bytes"], m.get("peak_bytes", float("nan"))
            print(f"  speed {v:11s} {length:6d} {json.dumps(speed[v][length])}", file=sys.stderr, flush=True)
    load1 = os.getloadavg()

    when = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    print(f"## LRA-style benchmark ({when}, {cpu_model()}, 1 thread, load average {load0[0]:.1f} → {load1[0]:.1f}, "
          f"total {(time.perf_counter() - started) / 60:.1f} min)\n")
    lengths = f"ListOps {args.listops_min}–{args.listops_max} tokens" if "listops" in args.tasks else ""
    print(f"Budget per variant and task: {args.steps} AdamW steps (lr {LR:g}, warmup 10 %, cosine) "
          f"× batch {args.batch}, "
          f"LRAClassifier dim 64 × 2 layers × 4 heads, same data order; {lengths}"
          f"{', ' if lengths else ''}text ≤ {args.text_len} bytes; test accuracy on {args.test_examples} "
          "examples (ListOps: all of them; text: a seeded subset of EWT test passages). Peak MiB: growth of "
          f"peak RSS over {args.memory_steps} training steps on the {args.batch} longest training sequences, "
          "with glibc's mmap threshold at 64 KiB (live memory, see the script's docstring).\n")
    header = "| variant | " + " | ".join(f"{TASKS[t]} acc (%) | steps/s | peak MiB" for t in args.tasks)
    print(header + " | mean acc (%) |")
    print("|---" + "|---:" * (3 * len(args.tasks) + 1) + "|")
    for v in args.variants:
        cells, accs = [], []
        for t in args.tasks:
            r = results[t][v]
            if "accuracy" in r:
                cells += [f"{100 * r['accuracy']:.1f}", f"{r['steps_per_s']:.2f}", f"{r['peak_bytes'] / MIB:,.0f}"]
                accs.append(100 * r["accuracy"])
            else:
                cells += [r.get("error", "—"), "—", "—"]
        mean = f"{statistics.mean(accs):.1f}" if len(accs) == len(args.tasks) else "—"
        print(f"| {LABELS[v]} | " + " | ".join(cells) + f" | {mean} |")
    majority = [f"{TASKS[t]} {100 * r['majority']:.1f} %" for t in args.tasks
                for r in [next((c for c in results[t].values() if "majority" in c), None)] if r]
    if majority:
        print(f"\nMajority-class accuracy of the test sets: {', '.join(majority)}.")

    if args.speed_lengths:
        print("\n### One attention layer, forward + backward (dim 256, 4 heads, batch 1, CPU, 1 thread)\n")
        cols = " | ".join(f"L={n:,} ms | L={n:,} MiB" for n in args.speed_lengths)
        print(f"| variant | {cols} | MiB per 1k tokens at each L |")
        print("|---" + "|---:" * (2 * len(args.speed_lengths) + 1) + "|")
        for v, row in speed.items():
            cells, per_k = [], []
            for n in args.speed_lengths:
                r = row[n]
                if "median_ms" in r:
                    cells += [f"{r['median_ms']:,.1f}", f"{r['peak_bytes'] / MIB:,.1f}"]
                    per_k.append(f"{r['peak_bytes'] / MIB / (n / 1024):,.1f}")
                else:
                    cells += [r.get("error", "—"), "—"]
                    per_k.append("—")
            print(f"| {LABELS[v]} | " + " | ".join(cells) + f" | {' / '.join(per_k)} |")
        top = max(args.speed_lengths)
        ref = speed.get("full-dense", {}).get(top, {})
        if "median_ms" in ref:
            verdicts = []
            for v, row in speed.items():
                r = row[top]
                if v.startswith("full") or "median_ms" not in r:
                    continue
                faster = r["median_ms"] < ref["median_ms"]
                smaller = r["peak_bytes"] < ref["peak_bytes"]
                verdicts.append(f"{v}: {ref['median_ms'] / r['median_ms']:.1f}× faster" if faster else f"{v}: SLOWER")
                verdicts[-1] += (f", {ref['peak_bytes'] / max(r['peak_bytes'], 1):.1f}× smaller" if smaller
                                 else ", LARGER")
            print(f"\nAt L={top:,} against Full (dense L×L): " + "; ".join(verdicts) + ".")
        fused = speed.get("full", {}).get(top, {})
        if "median_ms" in fused:
            verdicts = [f"{v}: {fused['median_ms'] / row[top]['median_ms']:.1f}× the speed, "
                        f"{row[top]['peak_bytes'] / max(fused['peak_bytes'], 1):.1f}× the memory"
                        for v, row in speed.items() if not v.startswith("full") and "median_ms" in row[top]]
            print(f"\nAt L={top:,} against Full (fused sdpa): " + "; ".join(verdicts) + ".")
    if args.figure and all(len(results[t]) for t in args.tasks):
        draw(results, args.variants, args.tasks, args.figure)
        print(f"\nFigure: {args.figure.relative_to(ROOT) if args.figure.is_relative_to(ROOT) else args.figure}")


if __name__ == "__main__":
    main()
