"""Training throughput of the vision app's ViT vs torchvision's VisionTransformer of the same size (CPU).

Why: the app's ViT is built from core blocks (fused qkv Linear, core ``attend`` -> SDPA for ``Full``); this
shows that the shared core costs nothing against the reference implementation users know, torchvision's
``VisionTransformer`` (``nn.MultiheadAttention`` inside), at equal depth, width, heads, MLP width and patch size.

Method
------
* Both models get the same configuration (default: 32x32 RGB images, patch 4, dim 192, depth 6, 3 heads,
  MLP 384, 10 classes, no dropout), the same random batch and an AdamW optimiser; one timed step is
  forward, cross-entropy, backward and ``optimizer.step()`` in training mode.
* The two models alternate step by step (one step of one, then one of the other, the order flipped every
  round), so a change in the machine's load hits both alike; after warm-up the median step time of each gives
  images/s, and the median of the per-round ratios (torchvision step / ours, adjacent in time) is the ratio
  least disturbed by a shared, noisy machine.
* The header prints the load average at start and end: the machine may be shared.

Run: ``.venv/bin/python benchmarks/vision.py`` (``--help`` for options).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torchvision.models import VisionTransformer  # noqa: E402

from apps.vision import VIT_ENCODER, ViT  # noqa: E402
from benchmarks.records import cpu_model  # noqa: E402


def build(args: argparse.Namespace) -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    mlp_ratio = args.mlp / args.dim
    ours = ViT(args.image, args.patch, 3, 10, encoder=VIT_ENCODER.replace(dim=args.dim, depth=args.depth,
               num_heads=args.heads, mlp_ratio=mlp_ratio))
    reference = VisionTransformer(image_size=args.image, patch_size=args.patch, num_layers=args.depth,
                                  num_heads=args.heads, hidden_dim=args.dim, mlp_dim=args.mlp, num_classes=10)
    count = {name: sum(p.numel() for p in m.parameters()) for name, m in (("ours", ours), ("tv", reference))}
    if count["ours"] != count["tv"]:
        raise SystemExit(f"the two models differ in size: {count}")
    return {"attnlab ViT": ours, "torchvision VisionTransformer": reference}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image", type=int, default=32)
    parser.add_argument("--patch", type=int, default=4)
    parser.add_argument("--dim", type=int, default=192)
    parser.add_argument("--depth", type=int, default=6)
    parser.add_argument("--heads", type=int, default=3)
    parser.add_argument("--mlp", type=int, default=384)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=30, help="timed steps per model, alternating")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    models = {name: m.to(device).train() for name, m in build(args).items()}
    optimisers = {name: torch.optim.AdamW(m.parameters(), lr=1e-4) for name, m in models.items()}
    g = torch.Generator().manual_seed(1)
    images = torch.randn(args.batch, 3, args.image, args.image, generator=g).to(device)
    labels = torch.randint(0, 10, (args.batch,), generator=g).to(device)

    def step(name: str) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        optimisers[name].zero_grad(set_to_none=True)
        F.cross_entropy(models[name](images), labels).backward()
        optimisers[name].step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    load_start = os.getloadavg()
    for name in models:  # warm-up
        step(name), step(name)
    times: dict[str, list[float]] = {name: [] for name in models}
    names = list(models)
    for r in range(args.rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            times[name].append(step(name))
    load_end = os.getloadavg()

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{cpu_model()}, {args.threads} thread(s)"
    print(f"# ViT training throughput, {dt.date.today()}, {where}; load average {load_start[0]:.2f} -> "
          f"{load_end[0]:.2f}")
    print(f"# {args.image}x{args.image} RGB, patch {args.patch}, dim {args.dim}, depth {args.depth}, "
          f"{args.heads} heads, MLP {args.mlp}, batch {args.batch}; {args.rounds} steps each, alternating\n")
    print("| model | median step (ms) | images/s | speed vs torchvision (median of paired ratios) |")
    print("|---|---:|---:|---:|")
    ours, anchor = times["attnlab ViT"], times["torchvision VisionTransformer"]
    paired = statistics.median(t / o for t, o in zip(anchor, ours, strict=True))
    for name, ts in times.items():
        median = statistics.median(ts)
        ratio = f"{paired:.2f}x" if name == "attnlab ViT" else "1.00x"
        print(f"| {name} | {1000 * median:.1f} | {args.batch / median:,.0f} | {ratio} |")
    print("\nsteps (ms): " + "; ".join(f"{n}: " + " ".join(f"{1000 * t:.0f}" for t in ts) for n, ts in times.items()))


if __name__ == "__main__":
    main()
