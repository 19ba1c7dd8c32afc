"""Self-attention vs CNN as the training set grows: ViTs and ResNet-18 on 5 %, 20 %, 100 % of CIFAR-10 train.

The lecture's figure (ViT paper, Fig. 3): a CNN's built-in locality wins with few images, self-attention
catches up or wins with many. Cordonnier et al. (2020) add that a CNN is self-attention restricted to a
receptive field, so the default models are a ViT attending to all patches (``Full``), ViTs restricted to the
3x3 and 5x5 patch windows of a CNN (``Neighborhood2D`` radius 1 and 2) and ResNet-18, each a name and its attnlab
arguments (``--model NAME=ARGS``, repeatable). All train through the same CLI, loop and recipe
(``configs/vision/cifar10_cpu.yaml``) with the same number of optimizer steps for every training-set size (so
a small set is seen for more epochs; the cosine schedule ends at the last step), and are tested on the full
CIFAR-10 test set. Prints a markdown table and writes the plot (accuracy vs number of training images, log x).

ResNet-18 trains in ``bf16-mixed``: it costs about ten times the ViT's arithmetic per image, and on a CPU with
AVX512-BF16 (or any GPU) bf16 matmuls halve its step (4.5 s -> 2.3 s per step of 128 images, one thread); the
ViTs keep float32. On a CPU without bf16 instructions, give ``--model "ResNet-18=--model.backbone resnet"``.

Run: ``.venv/bin/python benchmarks/vision_data_sweep.py --steps 2000 --record docs/results/records/vision_sweep.jsonl
--out docs/figures/vit_vs_cnn_cifar10_2000steps.png`` (``--record`` keeps finished runs, so an interrupted sweep resumes
where it stopped, also in a later invocation; ``--recorded_only`` runs nothing and redraws from the record).
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

from named_models import parse_models
from records import append_record, read_records

ROOT = Path(__file__).resolve().parents[1]
ATTNLAB = [sys.executable, "-m", "apps.cli"]


MODELS = [
    "ViT Full=--model.pattern core.Full",
    "ViT Neighborhood2D 3x3=--model.pattern core.Neighborhood2D --model.pattern.radius 1",
    "ViT Neighborhood2D 5x5=--model.pattern core.Neighborhood2D --model.pattern.radius 2",
    "ResNet-18 (bf16-mixed)=--model.backbone resnet --trainer.precision bf16-mixed",
]


def run(config: Path, model_args: list[str], fraction: float, steps: int, threads: int, root: Path,
        extra: list[str], val_every: int) -> dict:
    common = ["--config", str(config), *model_args, "--data.train_subset", str(fraction),
              "--trainer.default_root_dir", str(root), "--trainer.enable_progress_bar", "false"]
    # Validate (and keep "best") every ``val_every`` steps whatever the subset's epoch length: per epoch, a 5 %
    # subset would validate every 18 steps and spend more time on the validation set than on training.
    every = min(val_every, steps)
    cadence = ["--trainer.check_val_every_n_epoch", "null", "--trainer.val_check_interval", str(every)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    attnlab(["fit", *common, *cadence, "--trainer.max_steps", str(steps), "--trainer.max_epochs", "-1",
             "--trainer.max_time", "null", *extra], env)
    seconds = time.perf_counter() - start
    attnlab(["test", *common, "--ckpt_path", "best", *extra], env)
    record = json.loads(next(root.rglob("*.metrics.json")).read_text())
    return {"acc": record["metrics"]["test/acc"], "seconds": seconds}


def attnlab(args: list[str], env: dict) -> None:
    """Run the CLI; on failure stop with its command and the end of its output instead of a bare exit code."""
    done = subprocess.run([*ATTNLAB, *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-25:])
        raise SystemExit(f"attnlab {' '.join(args)} failed with exit code {done.returncode}:\n{tail}")


def load_record(path: Path | None) -> dict[tuple[str, float, int], dict]:
    """Finished runs from ``--record`` (JSON lines), keyed by (model name, fraction, steps), so a sweep resumes."""
    return {(r["model"], r["fraction"], r["steps"]): r for r in read_records(path) if "model" in r}


def count_images(fraction: float, config: Path) -> int:
    """Training images the datamodule of ``config`` keeps at ``train_subset=fraction``."""
    import yaml

    sys.path.insert(0, str(ROOT))
    from datamodules.vision import VisionData

    args = {**yaml.safe_load(config.read_text())["data"]["init_args"], "train_subset": fraction}
    cwd = os.getcwd()
    os.chdir(ROOT)  # the config's paths are relative to the project root
    try:
        data = VisionData(**args)
        data.setup()
        return len(data.splits["train"])
    finally:
        os.chdir(cwd)


def plot(results: dict[str, list[tuple[int, float]]], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for (name, points), marker in zip(results.items(), "osD^vP", strict=False):
        if not points:
            continue
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, [100 * y for y in ys], marker + ("--" if "resnet" in name.lower() else "-"), label=name)
    ax.set_xscale("log")
    sizes = sorted({x for points in results.values() for x, _ in points})
    ax.set_xticks(sizes, [f"{x:,}" for x in sizes])  # the measured sizes, not crowded log-scale minor labels
    ax.minorticks_off()
    ax.set_xlabel("number of training images")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "vision" / "cifar10_cpu.yaml")
    parser.add_argument("--fractions", nargs="+", type=float, default=[0.05, 0.2, 1.0])
    parser.add_argument("--model", action="append", dest="models", metavar="NAME=ARGS",
                        help="a named model and its attnlab arguments (repeatable; default: " + "; ".join(MODELS) + ")")
    parser.add_argument("--steps", type=int, default=2000, help="optimizer steps per run, the same for every size")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--val_every", type=int, default=100, help="validate (and keep the best) every N steps")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "figures" / "vit_vs_cnn_cifar10.png")
    parser.add_argument("--record", type=Path, default=None,
                        help="JSON-lines file of finished runs: appended to, and runs already in it are not repeated")
    parser.add_argument("--recorded_only", action="store_true",
                        help="run nothing: print the table and draw the plot from --record, missing cells marked")
    parser.add_argument("extra", nargs="*", help="extra attnlab arguments after --")
    args = parser.parse_args()
    models = parse_models(args.models or MODELS)
    results: dict[str, list[tuple[int, float]]] = {name: [] for name, _ in models}
    print(f"# {args.config.name}: {args.steps} optimizer steps per run, {args.threads} thread(s), "
          f"test on the full test set\n")
    print("| model | train images | test acc | fit s |")
    print("|---|---:|---:|---:|")
    import yaml

    batch = int(yaml.safe_load(args.config.read_text())["data"]["init_args"].get("batch_size", 128))
    done = load_record(args.record)
    with tempfile.TemporaryDirectory() as tmp:
        for fraction in args.fractions:
            # a recorded cell already knows the subset's size: --recorded_only then needs no data folder
            images = next((r["images"] for (_, f, s), r in done.items() if (f, s) == (fraction, args.steps)),
                          None) or count_images(fraction, args.config)
            for index, (name, model_args) in enumerate(models):
                r = done.get((name, fraction, args.steps))
                if r is None and args.recorded_only:
                    print(f"| {name} | {images:,} | not measured | – |", flush=True)
                    continue
                if r is None:
                    r = run(args.config.resolve(), model_args, fraction, args.steps, args.threads,
                            Path(tmp) / f"model{index}-{fraction}", args.extra, args.val_every)
                    r = {"model": name, "fraction": fraction, "steps": args.steps, "images": images, **r}
                    append_record(args.record, r)
                results[name].append((images, r["acc"]))
                print(f"| {name} | {images:,} | {100 * r['acc']:.1f} % | {r['seconds']:.0f} |", flush=True)
    plot(results, args.out, f"CIFAR-10, {args.steps} steps of batch {batch} per run (CPU)")
    print(f"\nplot: {args.out}")


if __name__ == "__main__":
    main()
