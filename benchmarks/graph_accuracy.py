"""Node-classification scores of the graph app's models over seeds or fixed splits, through the CLI as a user runs it.

Each model is a name and the attnlab arguments that make it (``--model NAME=ARGS``, repeatable; without any,
one model per ``--layers`` entry: attention = ours on core, gat / gcn / transformer_conv = PyG's convs in the same
skeleton and loop). For every model and every run: ``attnlab fit --config CONFIG ARGS`` then ``attnlab test
--ckpt_path best``, each in its own folder under ``--out``. A run is a seed (``--seeds``) or, for data sets with
fixed splits such as the heterophilous benchmark, a split (``--splits``: ``data.split_index``, seeded by its
index). The score is the test metric the model reports: ROC-AUC where the data has two classes (``test/roc_auc``),
else accuracy. Prints a markdown table: the score per run, mean ± std (sample std), median fit seconds per run,
and the whole command's wall time. ``--record FILE`` keeps each finished run (model, seed or split, score, fit
seconds) as a JSON line and reuses it on the next invocation with the same config and overrides, so a ten-split
table that takes hours can be finished by several invocations, and a later one prints the whole table at once.

Run: ``.venv/bin/python benchmarks/graph_accuracy.py --config configs/graph/cora.yaml --seeds 0 1 2 3 4``
Ten splits: ``... --config configs/graph/minesweeper.yaml --splits 0 1 2 3 4 5 6 7 8 9 \\
    --model "GT-sep=--model.layer attention" --model "TransformerConv-sep=--model.layer transformer_conv" \\
    -- --data.path ../shared/data/heterophilous/minesweeper.npz``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from named_models import parse_models
from records import append_record, read_records

ROOT = Path(__file__).resolve().parents[1]
ATTNLAB = [sys.executable, "-m", "apps.cli"]
SCORES = ("test/roc_auc", "test/acc")  # the first the run reports


def run_one(config: Path, name: str, model_args: list[str], run: dict[str, int], out: Path, threads: int,
            overrides: list[str]) -> tuple[str, float, float]:
    """(metric name, test score, fit seconds) of one seed or split."""
    label = "-".join(f"{k}{v}" for k, v in run.items())
    root = out / f"{name}-{label}"
    run_args = ["--seed_everything", str(run.get("seed", run.get("split", 0)))]
    if "split" in run:
        run_args += ["--data.split_index", str(run["split"])]
    common = ["--config", str(config), *model_args, *run_args, "--trainer.default_root_dir", str(root),
              "--trainer.enable_progress_bar", "false", "--data.root", str(ROOT / "data" / "planetoid"), *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    for command in (["fit", *common], ["test", *common, "--ckpt_path", "best"]):
        done = subprocess.run([*ATTNLAB, *command], cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{name} {label}: attnlab {command[0]} failed:\n{done.stderr[-3000:]}")
        if command[0] == "fit":
            seconds = time.perf_counter() - start
    metrics = json.loads(next(root.rglob("*.metrics.json")).read_text())["metrics"]
    key = next(k for k in SCORES if k in metrics)
    return key.split("/")[1], metrics[key], seconds


def record_key(name: str, model_args: list[str], config: str, overrides: list[str], run: dict) -> tuple:
    """What makes two runs the same run: model, its arguments, config, overrides and seed or split."""
    return name, tuple(model_args), config, tuple(overrides), json.dumps(run, sort_keys=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "graph" / "cora.yaml")
    parser.add_argument("--layers", nargs="+", default=["attention", "gat", "gcn", "transformer_conv"])
    parser.add_argument("--model", action="append", dest="models", metavar="NAME=ARGS",
                        help="a named model and its attnlab arguments (repeatable; replaces --layers)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--splits", nargs="+", type=int, default=None,
                        help="fixed splits (data.split_index) instead of seeds, each seeded by its index")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (OMP_NUM_THREADS)")
    parser.add_argument("--out", type=Path, default=None, help="run folders (default: a temporary folder)")
    parser.add_argument("--record", type=Path, default=None,
                        help="JSON lines of finished runs: reused when the same run is asked for again")
    parser.add_argument("overrides", nargs="*", help="extra attnlab arguments after --, e.g. -- --model.depth 3")
    args = parser.parse_args()
    runs = [{"split": s} for s in args.splits] if args.splits is not None else [{"seed": s} for s in args.seeds]
    begin = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        config = args.config.relative_to(ROOT) if args.config.is_relative_to(ROOT) else args.config
        what = f"splits {args.splits}" if args.splits is not None else f"seeds {args.seeds}"
        print(f"# {config}: test score of the best-val checkpoint, {what}, {args.threads} thread(s)"
              + (f", overrides: {' '.join(args.overrides)}" if args.overrides else "") + "\n")
        header = " | ".join(f"{k} {v}" for run in runs for k, v in run.items())
        print(f"| model | metric | {header} | mean ± std | median fit s |")
        print("|---|---|" + "---:|" * (len(runs) + 2))
        models = parse_models(args.models) if args.models else [(x, ["--model.layer", x]) for x in args.layers]
        done = {record_key(r["model"], r["args"], r["config"], r["overrides"], r["run"]): r
                for r in read_records(args.record)}
        for name, model_args in models:
            results = []
            for run in runs:
                key = record_key(name, model_args, str(config), args.overrides, run)
                if key not in done:
                    metric, score, seconds = run_one(args.config.resolve(), name, model_args, run, out,
                                                     args.threads, args.overrides)
                    done[key] = {"model": name, "args": model_args, "config": str(config),
                                 "overrides": args.overrides, "run": run, "metric": metric, "score": score,
                                 "fit_s": seconds}
                    append_record(args.record, done[key])
                r = done[key]
                results.append((r["metric"], r["score"], r["fit_s"]))
            scores = [100 * score for _, score, _ in results]
            std = statistics.stdev(scores) if len(scores) > 1 else 0.0
            fits = [s for _, _, s in results if s is not None]  # a record may lack its fit time
            print(f"| {name} | {results[0][0]} | " + " | ".join(f"{s:.2f}" for s in scores)
                  + f" | {statistics.mean(scores):.2f} ± {std:.2f} | "
                  + (f"{statistics.median(fits):.1f} |" if fits else "– |"), flush=True)
    print(f"\nwall time {time.perf_counter() - begin:.0f} s")


if __name__ == "__main__":
    main()
