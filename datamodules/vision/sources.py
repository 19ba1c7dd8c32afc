"""The built-in sources: scikit-learn's 8x8 digits (the offline default), torchvision's MNIST / Fashion-MNIST /
CIFAR-10/100 under ``data.root`` (any other torchvision class: ``torchvision_class``), and the stratified split
every source's validation (and digits' test) uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from .images import ImageSet

Source = Literal["digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "folder", "torchvision"]
SOURCES = ("digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "folder", "torchvision")


def load_torchvision(name: str, root: Path, train: bool, download: bool) -> ImageSet:
    import torchvision.datasets as tvd

    kind = {"mnist": tvd.MNIST, "fashion_mnist": tvd.FashionMNIST, "cifar10": tvd.CIFAR10,
            "cifar100": tvd.CIFAR100}[name]
    try:
        ds = kind(str(root), train=train, download=download)
    except RuntimeError as err:  # "Dataset not found. You can use download=True to download it"
        raise FileNotFoundError(f"data.source={name}: not found under {root} ({err}); set data.download: true on "
                                f"a connected machine, or data.root to an existing copy") from err
    data = torch.as_tensor(ds.data)
    images = data.unsqueeze(1) if data.dim() == 3 else data.permute(0, 3, 1, 2)  # grey (N,H,W) / RGB (N,H,W,C)
    labels = torch.as_tensor(ds.targets, dtype=torch.long)
    return ImageSet(images.contiguous(), labels, list(ds.classes), [str(i) for i in range(labels.numel())])


def load_digits() -> ImageSet:
    """scikit-learn's 8x8 digits (grey levels 0-16) as uint8 images 0-255."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    images = torch.as_tensor(d.images, dtype=torch.float32).mul(255.0 / 16.0).round().to(torch.uint8)
    return ImageSet(images.unsqueeze(1), torch.as_tensor(d.target, dtype=torch.long),
                    [str(i) for i in range(10)], [str(i) for i in range(len(d.target))])


def stratified_split(labels: Tensor, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Indices (rest, taken): ``fraction`` of every class taken (at least one where a class has two or more)."""
    g = torch.Generator().manual_seed(seed)
    rest, taken = [], []
    for c in labels.unique().tolist():
        members = (labels == c).nonzero().squeeze(1)
        members = members[torch.randperm(members.numel(), generator=g)]
        n = int(round(fraction * members.numel()))
        n = max(n, 1) if fraction > 0 and members.numel() > 1 else n
        taken.append(members[:n])
        rest.append(members[n:])
    return torch.cat(rest).sort().values, torch.cat(taken).sort().values
