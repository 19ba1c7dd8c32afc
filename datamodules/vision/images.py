"""Image files: decoding one image, an ImageFolder tree (``folder/<class>/<image>``) read once into memory as
uint8 images (N, C, H, W) plus labels (``ImageSet``), and ``.tar`` archives of such a tree, extracted once.

An undecodable file is an ``ImageError`` naming it, or is skipped and counted (``on_bad_file: skip``).
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor

from core.errors import DataError

from .resize import common_size

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class ImageError(DataError):
    """An image file that cannot be decoded; the message names the file (a ``core.errors.DataError``)."""


@dataclass
class ImageSet:
    """Images (N, C, H, W) uint8, labels (N,) long, class names, and a name per image (file or index)."""

    images: Tensor
    labels: Tensor
    classes: list[str]
    names: list[str]

    def subset(self, index: Tensor) -> ImageSet:
        return ImageSet(self.images[index], self.labels[index], self.classes, [self.names[i] for i in index.tolist()])

    def __len__(self) -> int:
        return self.labels.numel()


def read_image(path: Path) -> Tensor:
    """One image file -> (C, H, W) uint8 with C = 1 or 3; a truncated or unreadable file -> ImageError naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()  # decodes now: a truncated file fails here, not later in a worker
                if img.mode.startswith("I"):  # 16-bit grey (I;16*, I): scaled to 8 bits, not clipped at 255
                    img = _grey16_to_l(img)
                mode = "L" if img.mode in ("1", "L") else "RGB"
                img = img.convert(mode)
                data = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
                channels = 1 if mode == "L" else 3
                return data.view(img.height, img.width, channels).permute(2, 0, 1).contiguous()
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombWarning) as err:
        raise ImageError(f"{path}: cannot read image ({type(err).__name__}: {err}); expected a readable image "
                         f"file ({', '.join(IMAGE_SUFFIXES)})") from err


def _grey16_to_l(img):
    """A 16-bit grey image as 8-bit ``L``: values 0..65535 scaled to 0..255 (``convert("L")`` clips them)."""
    import numpy as np
    from PIL import Image

    values = np.asarray(img, dtype=np.int64)
    return Image.fromarray(((values.clip(0, 65535) * 255 + 32767) // 65535).astype(np.uint8))


def list_images(folder: Path) -> tuple[list[Path], list[int], list[str]]:
    """ImageFolder layout: ``folder/<class>/<image>``; classes sorted by name."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder; expected one sub-folder per class holding its images")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not classes:
        raise ValueError(f"{folder}: no class sub-folders; expected {folder}/<class>/<image>.jpg")
    files, labels = [], []
    for label, name in enumerate(classes):
        found = sorted(p for p in (folder / name).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:  # it would still count as a class the model can never learn, or shift every label after it
            raise DataError(f"{folder / name}: class folder holds no images", where=None,
                            expected=f"at least one image ({', '.join(IMAGE_SUFFIXES)}) per class folder",
                            fix="Add its images or remove the folder.")
        files += found
        labels += [label] * len(found)
    if not files:
        raise ValueError(f"{folder}: the class folders hold no images ({', '.join(IMAGE_SUFFIXES)})")
    return files, labels, classes


def read_folder(folder: Path, on_bad_file: Literal["error", "skip"] = "error", size: int | None = None,
                crop_pct: float = 1.0) -> ImageSet:
    """Decode every image of an ImageFolder tree once, brought to ``size`` x ``size`` by ``resize.common_size``
    (shorter side resized, centre crop; None keeps one square size, else picks the smallest shorter side); grey
    images become RGB when the folder also holds colour ones."""
    files, labels, classes = list_images(folder)
    images, kept, names, bad = [], [], [], []
    for path, label in zip(files, labels, strict=True):
        try:
            img = read_image(path)
        except ImageError as err:
            if on_bad_file == "error":
                raise
            bad.append(str(err))
            continue
        images.append(img)
        kept.append(label)
        names.append(str(path))
    if bad:
        rank_zero_warn(f"{folder}: skipped {len(bad)} unreadable image(s) (on_bad_file=skip), e.g. {bad[0]}")
    if not images:
        raise ValueError(f"{folder}: no readable image")
    images, _ = common_size(images, size, crop_pct, str(folder))
    if len({i.size(0) for i in images}) > 1:
        images = [i.expand(3, -1, -1) if i.size(0) == 1 else i for i in images]
    return ImageSet(torch.stack(images), torch.tensor(kept), classes, names)


def extract_tar(archive: Path, root: Path) -> Path:
    """Extract ``archive`` under ``root`` once (into a temp folder, then renamed: never half there)."""
    target = root / archive.name.split(".tar")[0]
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{target.name}."))
    try:
        rank_zero_info(f"extracting {archive} -> {target}")
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        inner = [p for p in tmp.iterdir()]
        source = inner[0] if len(inner) == 1 and inner[0].is_dir() and inner[0].name == target.name else tmp
        os.replace(source, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
