"""Training throughput of the festival config with the new and the old banded kernel, as a ratio in one run.

Why: every accuracy figure of the speech app is bounded by how many epochs fit on two CPU cores, and
``configs/speech/festival.yaml`` trains through the banded backend with relative positions
(Truncated(±16), max distance 16). Absolute frames/s on a shared VM drift with the load; the ratio of
two kernels timed alternately in the same process, on the same batches, does not (much).

Method
------
* The config's model and data module are built once through ``attnlab``'s CLI parser (``run=False``),
  with ``data.frame_shifts = 1``: the shifted training copies have the same lengths as the originals,
  so only the (minutes of) feature computation for them is saved. ``setup("fit")`` computes the
  features, and ``warmup + steps`` training batches are drawn once and reused for every measurement,
  so data loading is not timed.
* One timed step: forward (train mode), cross entropy over real frames, backward, gradient clipping
  at the config's value, an AdamW step. Frames/s = real frames (mask) / wall time.
* Kernels: "new" is ``core.backends.banded.banded_attention``; "old" swaps ``core.attend``'s banded
  kernel for ``benchmarks/reference_banded.py`` (the pre-rewrite kernel) in this process only.
  ``rounds`` rounds alternate new, old, new, old, ...; each round times ``steps`` steps after
  ``warmup`` untimed ones. Reported: the median frames/s of each kernel over its rounds and the ratio
  of the medians (and of each new/old pair, to judge the noise).
* Prints one JSON line (``benchmarks/attention.py`` runs this as a child and formats it).

Run: ``.venv/bin/python benchmarks/festival_speed.py`` (``--help`` for options).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CONFIG = "configs/speech/festival.yaml"


def build(config: str):
    """(model, training batches iterator factory, gradient clip) from the config, built once."""
    import os

    from apps.cli import AttnLabCLI

    os.chdir(ROOT)  # the config's data root is relative to the project root
    cli = AttnLabCLI(args=["--config", config, "--trainer.logger", "false", "--trainer.enable_checkpointing",
                           "false", "--data.init_args.frame_shifts", "1"], run=False)
    model, data = cli.model, cli.datamodule
    data.setup("fit")
    model.set_meta(data.meta)
    clip = cli.trainer.gradient_clip_val
    return model, data, clip


def measure(steps: int, warmup: int, rounds: int, threads: int, config: str) -> dict:
    import torch
    import torch.nn.functional as F

    import core.attend
    from apps.speech import IGNORE
    from benchmarks.reference_banded import banded_attention as old_kernel
    from core.backends.banded import banded_attention as new_kernel

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model, data, clip = build(config)
    loader = iter(data.train_dataloader())
    batches = [next(loader) for _ in range(warmup + steps)]
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step(batch) -> float:
        logits = model(batch["features"], batch["mask"])
        loss = F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=IGNORE)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        return float(batch["mask"].sum())

    kernels = {"new": new_kernel, "old": old_kernel}
    results: dict[str, list[float]] = {"new": [], "old": []}
    for r in range(2 * rounds):
        name = "new" if r % 2 == 0 else "old"
        core.attend.banded_attention = kernels[name]
        for batch in batches[:warmup]:
            step(batch)
        frames, t0 = 0.0, time.perf_counter()
        for batch in batches[warmup:]:
            frames += step(batch)
        results[name].append(frames / (time.perf_counter() - t0))
    core.attend.banded_attention = new_kernel
    new_median, old_median = statistics.median(results["new"]), statistics.median(results["old"])
    frames_per_step = sum(float(b["mask"].sum()) for b in batches[warmup:]) / steps
    return {"config": config, "steps": steps, "warmup": warmup, "rounds": rounds, "threads": threads,
            "frames_per_step": frames_per_step, "new_frames_per_s": results["new"],
            "old_frames_per_s": results["old"], "new_median": new_median, "old_median": old_median,
            "ratio": new_median / old_median,
            "round_ratios": [a / b for a, b in zip(results["new"], results["old"], strict=True)]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before each round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per kernel (alternating)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--config", default=CONFIG)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.steps, args.warmup, args.rounds, args.threads, args.config)))


if __name__ == "__main__":
    main()
