"""Any ``torchvision.datasets`` class by name (``data.source: torchvision``, ``data.dataset: CIFAR10``,
``data.dataset_args: {...}``), read once into memory like every other source.

Why by name: torchvision knows several dozen classification sets (CIFAR, SVHN, STL10, Flowers102, Food101,
ImageNet from a local copy, ...) with their own download and file formats; building the class by name means none of
them needs code here. The class gets ``root`` (``data.root``) and ``download`` (``data.download``) when it takes
them, and the splits the way its signature offers them: ``train=True/False``, or ``split="train"`` / ``"val"`` /
``"test"`` (the ones it refuses are left out), or one call (then test and validation are held out of it, see
``VisionData``). Sets that keep their images as one array (``.data`` + ``.targets``) are converted at once;
others are read item by item, PIL images or tensors, mixed sizes brought to one by ``resize.common_size``.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from core.errors import ConfigError, DataError

from ..base import library_class
from ..paths import DataNotFoundError, describe
from .images import ImageSet
from .resize import common_size


def dataset_class(name: str) -> type:
    """``torchvision.datasets.<name>``; one error listing close names when there is none."""
    import torchvision.datasets as tvd

    return library_class(tvd, name)


def _build(cls: type, kwargs: dict[str, Any], where: str) -> Any:
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ConfigError(f"{where}: {cls.__name__}{inspect.signature(cls)} cannot be built with {kwargs} "
                         f"(data.dataset_args): {err}") from err
    except RuntimeError as err:  # "Dataset not found or corrupted. You can use download=True to download it"
        raise DataNotFoundError(f"{where}: not found under {describe(kwargs.get('root', '.'))} (data.root) ({err}); "
                                f"set data.download: true on a connected machine, or data.root to an existing "
                                f"copy") from err


def _image(item: Any, where: str) -> Tensor:
    """One dataset image (PIL or tensor) -> (C, H, W) uint8 with C = 1 or 3."""
    from PIL import Image
    from torchvision.transforms import v2

    if isinstance(item, Image.Image):
        item = item.convert("L" if item.mode in ("1", "L", "I;16", "I") else "RGB")
        return v2.functional.pil_to_tensor(item)
    if isinstance(item, Tensor):
        image = item if item.dim() == 3 else item.unsqueeze(0)
        if image.is_floating_point():
            image = image.clamp(0, 1).mul(255).round().to(torch.uint8)
        return image[:3] if image.size(0) in (1, 3) or image.size(0) > 3 else image[:1]
    raise DataError(f"{where}: items are ({type(item).__name__}, label); expected a PIL image or a tensor")


def to_image_set(ds: Any, size: int | None, crop_pct: float, where: str) -> ImageSet:
    """A torchvision dataset as an ``ImageSet``: images of one square size as they are (``VisionData``'s transform
    resizes them per image), others brought to ``size`` on reading (``resize.common_size``)."""
    data, targets = getattr(ds, "data", None), getattr(ds, "targets", getattr(ds, "labels", None))
    names = [str(i) for i in range(len(ds))]
    if data is not None and targets is not None and getattr(data, "ndim", 0) in (3, 4) and len(data) == len(ds) \
            and str(getattr(data, "dtype", "")) in ("uint8", "torch.uint8") and getattr(ds, "transform", None) is None:
        x = torch.as_tensor(data)
        # grey (N, H, W); RGB (N, H, W, C) as CIFAR, or (N, C, H, W) as SVHN / STL10
        images = x.unsqueeze(1) if x.dim() == 3 else x if x.size(1) in (1, 3) else x.permute(0, 3, 1, 2)
        labels = torch.as_tensor(targets, dtype=torch.long)
        items = list(images.contiguous())
    else:
        pairs = [ds[i] for i in range(len(ds))]
        items = [_image(p[0], where) for p in pairs]
        labels = torch.as_tensor([int(p[1]) for p in pairs], dtype=torch.long)
    if not items:
        raise DataError(f"{where}: the dataset holds no image")
    if len({i.size(0) for i in items}) > 1:
        items = [i.expand(3, -1, -1) if i.size(0) == 1 else i for i in items]
    shapes = {tuple(i.shape[-2:]) for i in items}
    if len(shapes) > 1 or any(h != w for h, w in shapes):  # one square size stays native: the transform resizes
        items, _ = common_size(items, size, crop_pct, where)  # each image as it is drawn (CIFAR at 224: no 7 GB)
    classes = getattr(ds, "classes", None)
    if not (isinstance(classes, list | tuple) and all(isinstance(c, str) for c in classes)):
        classes = [str(c) for c in range(int(labels.max()) + 1)]
    return ImageSet(torch.stack(items).contiguous(), labels, list(classes), names)


def load_dataset_splits(name: str, root: Path, download: bool, args: dict[str, Any] | None, size: int | None,
                        crop_pct: float) -> dict[str, ImageSet]:
    """``{"train": ..., "val": ..., "test": ...}`` of ``torchvision.datasets.<name>`` (val / test only when the
    class offers them); train's image size is the size of the others."""
    cls = dataset_class(name)
    params = inspect.signature(cls).parameters
    base = dict(args or {})
    if "root" in params:
        base.setdefault("root", str(root))
    if "download" in params:
        base.setdefault("download", download)
    where = f"data.source=torchvision data.dataset={name}"
    if "train" in params and "train" not in base:
        calls = {"train": {"train": True}, "test": {"train": False}}
    elif "split" in params and "split" not in base:
        calls = {"train": {"split": "train"}, "val": {"split": "val"}, "test": {"split": "test"}}
    else:
        calls = {"train": {}}
    out: dict[str, ImageSet] = {}
    for split, extra in calls.items():
        try:
            ds = _build(cls, {**base, **extra}, where)
        except ValueError:  # a split the class does not have ("val" of a set with train/test only)
            if split == "train":
                raise
            continue
        out[split] = to_image_set(ds, size, crop_pct, f"{where} ({split})")
        if size is None:
            size = out[split].images.size(-1)
    return out
