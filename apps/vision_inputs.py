"""Images from files or tensors as the trained ViT sees them (``ViTClassifier.predict_items``, ``apps.inference``).

Like timm's evaluation transform: resize the shorter side to the model's size, crop the centre square, scale to
[0, 1], match the trained channel count (grey <-> RGB), normalise with the training statistics. No datamodule is
needed, so a checkpoint alone classifies new images.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms import v2


def as_image(item: str | os.PathLike | Tensor) -> Tensor:
    """A (C, H, W) tensor: read from a file path, or the tensor itself (uint8, or float in [0, 1])."""
    if isinstance(item, Tensor):
        return item if item.dim() == 3 else item.unsqueeze(0)
    return decode_image(os.fspath(item), mode=ImageReadMode.UNCHANGED)


def prepare_images(items: list[str | os.PathLike | Tensor], size: int, channels: int, mean: list[float],
                   std: list[float]) -> Tensor:
    """(B, channels, size, size) normalised images of ``items``."""
    steps = v2.Compose([v2.Resize(size, antialias=True), v2.CenterCrop(size), v2.ToDtype(torch.float32, scale=True)])
    images = []
    for item in items:
        image = steps(as_image(item))
        if image.size(0) == 4:  # RGBA: drop alpha
            image = image[:3]
        if image.size(0) != channels:
            image = image.mean(0, keepdim=True) if channels == 1 else image.expand(channels, -1, -1)
        images.append(image)
    return v2.functional.normalize(torch.stack(images), mean, std)
