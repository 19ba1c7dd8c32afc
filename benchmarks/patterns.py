"""Every attention pattern on every app: one table (test metric, training throughput, peak memory) and a figure.

For each app, its default config trains under each pattern that makes sense there, with one fixed budget per app
(``BUDGETS``: epochs, stated in the table), through the CLI as a user runs it: ``attnlab fit`` then ``attnlab test
--ckpt_path best``, each in its own run folder. So every cell comes from the same loop as the app's own results.

- POS (``configs/pos/ewt.yaml``) and speech (``configs/speech/festival.yaml``): Full, Truncated, Longformer,
  BigBird, and the O(L) kernels linear and Performer (these need positions the kernel can take: rotary);
- vision (``configs/vision/cifar10_cpu.yaml``): Full, Neighborhood2D (a 2-D window over the patch grid) and the
  1-D window over the flattened patch sequence (Longformer with the class token global), which cuts image rows;
- graph (``configs/graph/cora.yaml``): EdgeMask, and EdgeMask plus a virtual node (a global token linked to all).

Throughput is training examples (sentences, utterances, images; graph: full-batch steps) per second of the fit
command (process start to exit: start-up and validation included, so short budgets read low);
peak memory is the fit process's peak resident set (``os.wait4``). A cell whose run fails says why (the last line
of the error). Use ``--apps`` for a subset and ``--quick`` for a smoke run on tiny budgets (not a result);
``--record runs.jsonl`` keeps every finished cell, so an interrupted run resumes where it stopped and a later
invocation prints and draws all recorded cells of its apps.

Run: ``.venv/bin/python benchmarks/patterns.py --out runs/patterns --figure docs/figures/patterns_by_app.png``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from records import append_record, read_records

ROOT = Path(__file__).resolve().parents[1]
ATTNLAB = [sys.executable, "-m", "apps.cli"]


def pattern(name: str, **args: object) -> list[str]:
    out = ["--model.pattern", f"core.{name}"]
    for key, value in args.items():
        out += [f"--model.pattern.{key}", str(value)]
    return out


KERNEL = ["--model.pattern", "core.Full", "--model.encoder.position", "rotary", "--model.encoder.kernel.kind"]
SEQUENCE_PATTERNS = {  # POS (words) and speech (frames)
    "Full": ["--model.pattern", "core.Full"],
    "Truncated ±8": pattern("Truncated", left=8, right=8),
    "Longformer ±8 + 1 global": pattern("Longformer", window=8, global_tokens=1),
    "BigBird ±8 + 1 global + 2 random blocks of 8": pattern("BigBird", window=8, global_tokens=1, random_blocks=2,
                                                          block_size=8),
    "linear (elu+1, rotary)": [*KERNEL, "linear"],
    "Performer (FAVOR+, rotary)": [*KERNEL, "performer"],
}
APPS = {
    "pos": ("configs/pos/ewt.yaml", SEQUENCE_PATTERNS),
    "speech": ("configs/speech/festival.yaml", SEQUENCE_PATTERNS),
    "vision": ("configs/vision/cifar10_cpu.yaml", {
        "Full": ["--model.pattern", "core.Full"],
        "Neighborhood2D r=1 (3×3 patches)": pattern("Neighborhood2D", radius=1),
        "1-D window ±8 over flattened patches (+ class token)": pattern("Longformer", window=8, global_tokens=1),
    }),
    "graph": ("configs/graph/cora.yaml", {
        "EdgeMask": [],
        "EdgeMask + virtual node": ["--data.virtual_node", "true"],
    }),
}
BUDGETS = {"pos": 2, "speech": 10, "vision": 1, "graph": 200}  # epochs
QUICK = ["--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "2", "--trainer.limit_test_batches", "2"]
SCORES = ("test/acc", "test/roc_auc")


def run(args: list[str], threads: int) -> tuple[int, float, int, str]:
    """(exit code, seconds, peak RSS in MiB, last stderr line) of one attnlab command."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen([*ATTNLAB, *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err,
                                   text=True)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        lines = [line.strip() for line in err.read().splitlines() if line.strip()]
    return process.returncode, time.perf_counter() - start, usage.ru_maxrss // 1024, lines[-1] if lines else ""


def training_examples(root: Path) -> int:
    """Examples the fit trained on: the logged steps times the batch size of its saved config (graph: steps)."""
    import yaml

    config = yaml.safe_load(next(root.rglob("config.yaml")).read_text())
    checkpoint = next(root.rglob("last.ckpt"))
    import torch

    steps = int(torch.load(checkpoint, map_location="cpu", weights_only=False)["global_step"])
    batch = (config.get("data", {}).get("init_args", {}) or {}).get("batch_size")
    mode = (config.get("data", {}).get("init_args", {}) or {}).get("mode")
    return steps if mode == "full" or not batch else steps * int(batch)


def cell(app: str, name: str, extra: list[str], out: Path, threads: int, quick: bool) -> dict[str, object]:
    config, _ = APPS[app]
    root = out / app / "".join(c if c.isalnum() else "-" for c in name)
    common = ["--config", str(ROOT / config), *extra, "--trainer.max_epochs", str(BUDGETS[app] if not quick else 1),
              "--trainer.default_root_dir", str(root), "--trainer.enable_progress_bar", "false",
              *(QUICK if quick else [])]
    if app == "graph":
        common += ["--data.root", str(ROOT / "data" / "planetoid")]
    code, seconds, peak, last = run(["fit", *common], threads)
    if code:
        return {"error": last or f"fit exited with {code}"}
    code, _, _, last = run(["test", *common, "--ckpt_path", "best"], threads)
    if code:
        return {"error": last or f"test exited with {code}"}
    metrics = json.loads(next(root.rglob("*.metrics.json")).read_text())["metrics"]
    key = next(k for k in SCORES if k in metrics)
    return {"metric": key, "score": 100 * metrics[key], "per_s": training_examples(root) / seconds, "peak_mib": peak,
            "fit_s": seconds}


def draw(results: dict[str, dict[str, dict[str, object]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    apps = [a for a in results if results[a]]
    fig, axes = plt.subplots(1, len(apps), figsize=(4.2 * len(apps), 3.8), squeeze=False)
    for ax, app in zip(axes[0], apps, strict=True):
        names = list(results[app])
        scores = [results[app][n].get("score", 0.0) for n in names]
        ax.barh(range(len(names)), scores, color=["#4c72b0" if "error" not in results[app][n] else "#cccccc"
                                                  for n in names])
        for y, n in enumerate(names):  # the score and the training throughput at the end of each bar
            r = results[app][n]
            label = "cannot run" if "error" in r else f"{r['score']:.1f}  ({r['per_s']:.1f}/s)"
            ax.text(r.get("score", 0.0), y, " " + label, va="center", fontsize=7)
        ax.set_yticks(range(len(names)), [n if len(n) < 28 else n[:26] + "…" for n in names], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("test score %")
        ax.set_title(f"{app} ({BUDGETS[app]} epochs)", fontsize=9)
        low = min((s for s in scores if s), default=0.0)
        ax.set_xlim(max(0.0, low - 10), min(100.0, max(scores) + 12))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=130, format="png")
    os.replace(tmp, path)
    plt.close(fig)


def load_record(path: Path | None, quick: bool) -> dict[tuple[str, str], dict[str, object]]:
    """Finished cells from ``--record`` (JSON lines), keyed by (app, pattern); smoke cells only for ``--quick``."""
    return {(r.pop("app"), r.pop("pattern")): r for r in read_records(path) if r.pop("quick") == quick}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--apps", nargs="+", default=list(APPS), choices=list(APPS))
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (OMP_NUM_THREADS)")
    parser.add_argument("--out", type=Path, default=None, help="run folders (default: a temporary folder)")
    parser.add_argument("--figure", type=Path, default=None, help="PNG of the test scores per app and pattern")
    parser.add_argument("--quick", action="store_true", help="3 batches of one epoch per cell: a smoke run")
    parser.add_argument("--record", type=Path, default=None,
                        help="JSON-lines file of finished cells: appended to, and cells already in it are not rerun")
    args = parser.parse_args()
    done = load_record(args.record, args.quick)
    begin = time.perf_counter()
    results: dict[str, dict[str, dict[str, object]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        print(f"# patterns x apps, {args.threads} thread(s) per run" + (" (quick smoke run)" if args.quick else "")
              + "\n")
        print("| app (config, budget) | pattern | test metric | score % | training examples/s | peak RSS MiB |")
        print("|---|---|---|---:|---:|---:|")
        for app in args.apps:
            config, patterns = APPS[app]
            results[app] = {}
            for name, extra in patterns.items():
                result = done.get((app, name))
                if result is None:
                    result = cell(app, name, extra, out, args.threads, args.quick)
                    if "error" not in result:  # a failed cell is retried
                        append_record(args.record, {"app": app, "pattern": name, "quick": args.quick, **result})
                results[app][name] = result
                where = f"{app} (`{config}`, {BUDGETS[app] if not args.quick else 1} epochs)"
                if "error" in result:
                    print(f"| {where} | {name} | cannot run: {result['error'][:160]} | | | |", flush=True)
                else:
                    print(f"| {where} | {name} | {result['metric']} | {result['score']:.2f} | "
                          f"{result['per_s']:.1f} | {result['peak_mib']} |", flush=True)
    if args.figure:
        draw(results, args.figure)
        print(f"\nfigure: {args.figure}")
    print(f"wall time {time.perf_counter() - begin:.0f} s")


if __name__ == "__main__":
    main()
