"""Node-classification accuracy of the graph app's layers over seeds, through the CLI as a user runs it.

For every ``--layers`` entry (attention = ours on core; gat / gcn / transformer_conv = PyG's convs in the same
skeleton and loop) and every seed: ``attnlab fit --config CONFIG --model.layer L --seed_everything S`` then
``attnlab test --ckpt_path best``, each run in its own folder under ``--out``. Prints a markdown table with
test accuracy per seed, mean ± std (sample std) and the median fit time per seed.

Run: ``.venv/bin/python benchmarks/graph_accuracy.py --config configs/graph/cora.yaml --seeds 0 1 2 3 4``
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

ROOT = Path(__file__).resolve().parents[1]
ATTNLAB = [sys.executable, "-m", "apps.cli"]


def run_one(config: Path, layer: str, seed: int, out: Path, threads: int, overrides: list[str]) -> tuple[float, float]:
    """(test accuracy, fit seconds) of one seed."""
    root = out / f"{layer}-seed{seed}"
    common = ["--config", str(config), "--model.layer", layer, "--seed_everything", str(seed),
              "--trainer.default_root_dir", str(root), "--trainer.enable_progress_bar", "false",
              "--data.root", str(ROOT / "data" / "planetoid"), *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    subprocess.run([*ATTNLAB, "fit", *common], check=True, cwd=ROOT, env=env, capture_output=True)
    seconds = time.perf_counter() - start
    subprocess.run([*ATTNLAB, "test", *common, "--ckpt_path", "best"], check=True, cwd=ROOT, env=env,
                   capture_output=True)
    metrics = next(root.rglob("*.metrics.json"))
    return json.loads(metrics.read_text())["metrics"]["test/acc"], seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "graph" / "cora.yaml")
    parser.add_argument("--layers", nargs="+", default=["attention", "gat", "gcn", "transformer_conv"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (OMP_NUM_THREADS)")
    parser.add_argument("--out", type=Path, default=None, help="run folders (default: a temporary folder)")
    parser.add_argument("overrides", nargs="*", help="extra attnlab arguments after --, e.g. -- --model.depth 3")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        print(f"# {args.config.relative_to(ROOT) if args.config.is_relative_to(ROOT) else args.config}: "
              f"test accuracy of the best-val checkpoint, seeds {args.seeds}, {args.threads} thread(s)"
              + (f", overrides: {' '.join(args.overrides)}" if args.overrides else "") + "\n")
        print("| layer | " + " | ".join(f"seed {s}" for s in args.seeds) + " | mean ± std | median fit s |")
        print("|---|" + "---:|" * (len(args.seeds) + 2))
        for layer in args.layers:
            results = [run_one(args.config.resolve(), layer, s, out, args.threads, args.overrides) for s in args.seeds]
            accs = [100 * a for a, _ in results]
            std = statistics.stdev(accs) if len(accs) > 1 else 0.0
            print(f"| {layer} | " + " | ".join(f"{a:.1f}" for a in accs)
                  + f" | {statistics.mean(accs):.2f} ± {std:.2f} | {statistics.median(s for _, s in results):.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
