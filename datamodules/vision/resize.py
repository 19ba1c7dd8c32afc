"""Bringing images of any size to the model's square input the way timm's eval transform does: resize the
shorter side to ``floor(size / crop_pct)``, then crop the centre ``size`` x ``size``.

Why: squashing a 640x480 photo into a square distorts every object in it, so a model trained on squashed images
sees other shapes than the ones a user hands to ``predict``. timm (``timm.data.resolve_data_config`` /
``transforms_factory.transforms_imagenet_eval``) keeps the aspect ratio instead: ``Resize(scale_size)`` on the
shorter side with ``scale_size = floor(img_size / crop_pct)``, then ``CenterCrop(img_size)``; its ImageNet default
is ``crop_pct = 0.875`` (224 from 256). Here ``crop_pct`` defaults to 1.0 (the shorter side becomes ``size``
exactly, nothing but the longer side's overhang is cut), so square images are resized exactly as before; set
``data.crop_pct: 0.875`` for timm's ImageNet convention. The same step serves fit, test and predict, so every
image the model sees went through one geometry.
"""

from __future__ import annotations

import math

from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torchvision.transforms import v2

from core.errors import ConfigError

TIMM_CROP_PCT = 0.875  # timm.data.constants.DEFAULT_CROP_PCT


def scale_size(size: int, crop_pct: float) -> int:
    """The shorter side before the centre crop (timm: ``math.floor(img_size / crop_pct)``)."""
    if not 0.0 < crop_pct <= 1.0:
        raise ConfigError(f"data.crop_pct must be in (0, 1], got {crop_pct}")
    return max(size, math.floor(size / crop_pct))


def resize_crop(image: Tensor, size: int, crop_pct: float = 1.0) -> Tensor:
    """(..., C, H, W) uint8 -> (..., C, size, size): shorter side to ``scale_size``, centre crop ``size``."""
    if tuple(image.shape[-2:]) == (size, size) and crop_pct == 1.0:
        return image
    resized = v2.functional.resize(image, scale_size(size, crop_pct), antialias=True)
    return v2.functional.center_crop(resized, [size, size])


class ResizeCrop:
    """``resize_crop`` as a step of a ``v2.Compose``; images already ``size`` x ``size`` pass unchanged (they
    were brought there on reading)."""

    def __init__(self, size: int, crop_pct: float = 1.0) -> None:
        self.size, self.crop_pct = size, crop_pct
        scale_size(size, crop_pct)  # checks crop_pct

    def __call__(self, image: Tensor) -> Tensor:
        if tuple(image.shape[-2:]) == (self.size, self.size):
            return image
        return resize_crop(image, self.size, self.crop_pct)

    def __repr__(self) -> str:
        return f"ResizeCrop(size={self.size}, crop_pct={self.crop_pct})"


def common_size(images: list[Tensor], size: int | None, crop_pct: float, where: str) -> tuple[list[Tensor], int | None]:
    """Images of one shape: unchanged when ``size`` is None and all are one square size; else every image resized
    and centre-cropped (``resize_crop``; one already ``size`` x ``size`` is kept as is when ``crop_pct`` is 1).
    ``size`` None with mixed or non-square sizes picks the smallest shorter side (no image is enlarged) and warns
    that ``data.image_size`` would choose it."""
    shapes = {tuple(i.shape[-2:]) for i in images}
    if size is None:
        if len(shapes) == 1 and (first := next(iter(shapes)))[0] == first[1]:
            return images, None
        size = min(min(s) for s in shapes)
        rank_zero_warn(f"{where}: images of {len(shapes)} different sizes (or not square), e.g. "
                       f"{sorted(shapes)[:3]}; resizing the shorter side and centre-cropping all to {size}x{size} "
                       f"(the smallest shorter side). Set data.image_size to choose the size")
    return [resize_crop(i, size, crop_pct) for i in images], size
