"""Image classification data for the vision app: digits, MNIST, Fashion-MNIST, CIFAR-10/100, image folders.

Every source is read once into memory as uint8 images (N, C, H, W) plus labels, so an epoch never decodes a
file again (CIFAR-10 as JPEGs: 60,000 decodes once, about 10 s). Training images then go through
``torchvision.transforms.v2`` per sample: random crop with padding, horizontal flip, optional RandAugment,
resize, and normalisation with the training split's per-channel mean and std.

Sources
    digits                      scikit-learn's bundled 8x8 handwritten digits (1,797 images): the offline
                                default; fixed stratified test split (``test_fraction``)
    mnist / fashion_mnist /     torchvision datasets under ``root`` (downloaded on a connected machine with
    cifar10 / cifar100          ``download: true``, or an existing copy)
    folder                      ``path`` is an image folder with ``train/`` and ``test/`` sub-folders of one
                                folder per class (torchvision ImageFolder layout), or a ``.tar`` of one, which
                                is extracted once under ``root``

Validation images come from the training split (``val_fraction``, stratified, ``split_seed``);
``train_subset`` keeps that fraction of the remaining training images (stratified), for data-size sweeps.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from .base import AttnLabDataModule

Source = Literal["digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "folder"]
SOURCES = ("digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "folder")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class ImageError(ValueError):
    """An image file that cannot be decoded; the message names the file."""


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


# ------------------------------------------------------------------------------------------------ reading
def read_image(path: Path) -> Tensor:
    """One image file -> (C, H, W) uint8 with C = 1 or 3; a truncated or unreadable file -> ImageError naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()  # decodes now: a truncated file fails here, not later in a worker
                mode = "L" if img.mode in ("1", "L", "I;16", "I") else "RGB"
                img = img.convert(mode)
                data = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
                channels = 1 if mode == "L" else 3
                return data.view(img.height, img.width, channels).permute(2, 0, 1).contiguous()
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombWarning) as err:
        raise ImageError(f"{path}: cannot read image ({type(err).__name__}: {err}); expected a readable image "
                         f"file ({', '.join(IMAGE_SUFFIXES)})") from err


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
        files += found
        labels += [label] * len(found)
    if not files:
        raise ValueError(f"{folder}: the class folders hold no images ({', '.join(IMAGE_SUFFIXES)})")
    return files, labels, classes


def read_folder(folder: Path, on_bad_file: Literal["error", "skip"] = "error", size: int | None = None) -> ImageSet:
    """Decode every image of an ImageFolder tree once. Images of different sizes need ``size`` (resized to
    size x size); grey images become RGB when the folder also holds colour ones."""
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
        if size is not None and tuple(img.shape[1:]) != (size, size):
            img = v2.functional.resize(img, [size, size], antialias=True)
        images.append(img)
        kept.append(label)
        names.append(str(path))
    if bad:
        rank_zero_warn(f"{folder}: skipped {len(bad)} unreadable image(s) (on_bad_file=skip), e.g. {bad[0]}")
    if not images:
        raise ValueError(f"{folder}: no readable image")
    if len({tuple(i.shape[1:]) for i in images}) > 1:
        raise ValueError(f"{folder}: images have different sizes ({images[0].shape[1:]} and others); set "
                         f"data.image_size to resize them on reading")
    if len({i.size(0) for i in images}) > 1:
        images = [i.expand(3, -1, -1) if i.size(0) == 1 else i for i in images]
    return ImageSet(torch.stack(images), torch.tensor(kept), classes, names)


def read_folder_cached(folder: Path, cache_dir: Path | None, on_bad_file: Literal["error", "skip"] = "error",
                       size: int | None = None) -> ImageSet:
    """``read_folder`` with its decoded result saved under ``cache_dir`` (atomically), keyed by the folder and
    image size, and reused while the folder holds the same files (count, first and last name)."""
    if cache_dir is None:
        return read_folder(folder, on_bad_file, size)
    files, _, _ = list_images(folder)
    key = [str(folder.resolve()), len(files), str(files[0]), str(files[-1]), size, on_bad_file]
    cache = cache_dir / f"{folder.parent.name}-{folder.name}-{size or 'native'}.pt"
    if cache.is_file():
        try:
            saved = torch.load(cache, map_location="cpu", weights_only=True)
            if saved.get("key") == key:
                return ImageSet(saved["images"], saved["labels"], saved["classes"], saved["names"])
        except Exception:  # unreadable or stale cache: decode again
            pass
    rank_zero_info(f"decoding {len(files)} images of {folder} (once: cached in {cache})")
    images = read_folder(folder, on_bad_file, size)
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=f".{cache.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save({"key": key, "images": images.images, "labels": images.labels, "classes": images.classes,
                    "names": images.names}, tmp)
        os.replace(tmp, cache)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return images


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


def _from_torchvision(name: str, root: Path, train: bool, download: bool) -> ImageSet:
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


# ------------------------------------------------------------------------------------------------ dataset
class ImageDataset(Dataset):
    """uint8 images through a v2 transform; items are (image float (C, H, W), label)."""

    def __init__(self, images: ImageSet, transform: v2.Transform) -> None:
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return self.transform(self.images.images[i]), int(self.images.labels[i])


class VisionData(AttnLabDataModule):
    """Images for ``apps.vision.ViTClassifier``; batches are (images (B, C, H, W) float, labels (B,)).

    ``image_size``: resize to this square size (None keeps the source's). ``channels``: the model's input
    channels (1 or 3); grey images are repeated to RGB and RGB converted to grey as needed (None keeps the
    source's). ``crop_padding``: random crop of the image size after zero-padding by this many pixels (0 = off);
    ``hflip``: random horizontal flip (off for digits: a mirrored 2 is no 2); ``affine_degrees`` /
    ``affine_scale``: random rotation by up to that many degrees and scaling by 1 ± that factor (0 = off);
    ``rand_augment``: RandAugment
    operations per image (0 = off) at ``rand_augment_magnitude``. ``predict_path``: an image file or folder to
    classify (None = the test split); ``predict_output``: the CSV ``attnlab predict`` writes. ``cache``: keep the
    decoded images of a folder source under ``root/.cache`` so later runs skip decoding.
    """

    def __init__(
        self,
        source: Source = "digits",
        root: str = "data/vision",
        path: str | None = None,
        download: bool = False,
        image_size: int | None = None,
        channels: int | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        train_subset: float = 1.0,
        crop_padding: int = 0,
        hflip: bool = False,
        affine_degrees: float = 0.0,
        affine_scale: float = 0.0,
        rand_augment: int = 0,
        rand_augment_magnitude: int = 9,
        on_bad_file: Literal["error", "skip"] = "error",
        cache: bool = True,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool | None = None,
        predict_path: str | None = None,
        predict_output: str = "predictions.csv",
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, pin_memory=pin_memory)
        if source not in SOURCES:
            raise ValueError(f"data.source must be one of {SOURCES}, got {source!r}")
        if source == "folder" and not path:
            raise ValueError("data.source=folder needs data.path: a folder with train/ and test/ class folders "
                             "(or a .tar of one)")
        if channels not in (None, 1, 3):
            raise ValueError(f"data.channels must be 1, 3 or null (the source's), got {channels}")
        if not 0.0 <= val_fraction < 1.0 or not 0.0 < test_fraction < 1.0:
            raise ValueError(f"data.val_fraction must be in [0, 1) and data.test_fraction in (0, 1), got "
                             f"{val_fraction}, {test_fraction}")
        if not 0.0 < train_subset <= 1.0:
            raise ValueError(f"data.train_subset must be in (0, 1], got {train_subset}")
        if on_bad_file not in ("error", "skip"):
            raise ValueError(f"data.on_bad_file must be 'error' or 'skip', got {on_bad_file!r}")
        self.source, self.root, self.path, self.download = source, Path(root), Path(path) if path else None, download
        self.image_size, self.channels = image_size, channels
        self.val_fraction, self.test_fraction, self.split_seed = val_fraction, test_fraction, split_seed
        self.train_subset = train_subset
        self.crop_padding, self.hflip = crop_padding, hflip
        self.affine_degrees, self.affine_scale = affine_degrees, affine_scale
        self.rand_augment, self.rand_augment_magnitude = rand_augment, rand_augment_magnitude
        self.on_bad_file, self.cache = on_bad_file, cache
        self.eval_batch_size = eval_batch_size or batch_size
        self.predict_path = Path(predict_path) if predict_path else None
        self.predict_output = predict_output
        self.splits: dict[str, ImageSet] = {}
        # Set from the training images at setup, or from a checkpoint (so predict normalises like training).
        self.stats: dict[str, Any] | None = None

    # ----------------------------------------------------------------------------------------- loading
    def _read(self) -> tuple[ImageSet, ImageSet]:
        """(train, test) of the source, channels converted, before any split."""
        if self.source == "digits":
            full = load_digits()
            rest, test = stratified_split(full.labels, self.test_fraction, seed=1234)
            train, test = full.subset(rest), full.subset(test)
        elif self.source == "folder":
            folder = extract_tar(self.path, self.root) if self.path.is_file() else self.path
            parts = {}
            for split in ("train", "test"):
                if not (folder / split).is_dir():
                    raise FileNotFoundError(f"data.path={self.path}: missing {folder / split}; expected "
                                            f"{folder}/train/<class>/... and {folder}/test/<class>/...")
                cache_dir = self.root / ".cache" if self.cache else None
                parts[split] = read_folder_cached(folder / split, cache_dir, self.on_bad_file, self.image_size)
            train, test = parts["train"], parts["test"]
            if train.classes != test.classes:
                raise ValueError(f"{folder}: train/ and test/ have different class folders: {train.classes} vs "
                                 f"{test.classes}")
        else:
            train = _from_torchvision(self.source, self.root, True, self.download)
            test = _from_torchvision(self.source, self.root, False, self.download)
        return self._convert(train), self._convert(test)

    def _convert(self, images: ImageSet) -> ImageSet:
        if self.channels is None or images.images.size(1) == self.channels:
            return images
        x = images.images
        x = x.expand(-1, 3, -1, -1).contiguous() if self.channels == 3 else v2.functional.rgb_to_grayscale(x)
        return ImageSet(x, images.labels, images.classes, images.names)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        train, test = self._read()
        rest, val = stratified_split(train.labels, self.val_fraction, self.split_seed)
        if self.train_subset < 1.0:
            _, keep = stratified_split(train.labels[rest], self.train_subset, self.split_seed + 1)
            rest = rest[keep]
        self.splits = {"train": train.subset(rest), "val": train.subset(val), "test": test}
        if self.stats is None:
            self.stats = self._statistics(self.splits["train"])
        rank_zero_info(f"vision data {self.source}: {len(self.splits['train'])} train / {len(self.splits['val'])} val"
                       f" / {len(test)} test images of {self.shape}, {self.num_classes} classes")

    def _statistics(self, images: ImageSet) -> dict[str, Any]:
        x = images.images
        sample = x[torch.randperm(x.size(0), generator=torch.Generator().manual_seed(0))[:10000]].float() / 255.0
        return {"mean": sample.mean((0, 2, 3)).tolist(), "std": sample.std((0, 2, 3)).clamp(min=1e-3).tolist(),
                "classes": images.classes, "channels": x.size(1), "size": self.image_size or x.size(-1)}

    @property
    def num_classes(self) -> int:
        self.setup()
        return len(self.stats["classes"])

    @property
    def shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of the images the model sees."""
        if self.stats is None:
            self.setup()
        return self.stats["channels"], self.stats["size"], self.stats["size"]

    # -------------------------------------------------------------------------------------- transforms
    def transform(self, train: bool) -> v2.Transform:
        steps: list[v2.Transform] = []
        size = self.stats["size"]
        if self.image_size is not None:
            steps.append(v2.Resize([size, size], antialias=True))
        if train:
            if self.affine_degrees or self.affine_scale:
                scale = (1.0 - self.affine_scale, 1.0 + self.affine_scale) if self.affine_scale else None
                steps.append(v2.RandomAffine(degrees=self.affine_degrees, scale=scale))
            if self.crop_padding:
                steps.append(v2.RandomCrop(size, padding=self.crop_padding))
            if self.hflip:
                steps.append(v2.RandomHorizontalFlip())
            if self.rand_augment:
                steps.append(v2.RandAugment(self.rand_augment, self.rand_augment_magnitude))
        steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(self.stats["mean"], self.stats["std"])]
        return v2.Compose(steps)

    # ----------------------------------------------------------------------------------------- loaders
    def _loader(self, split: str, train: bool = False) -> DataLoader:
        self.setup()
        dataset = ImageDataset(self.splits[split], self.transform(train))
        if train:
            return self.loader(dataset, shuffle=True, drop_last=len(dataset) > self.batch_size)
        return self.loader(dataset, batch_size=self.eval_batch_size)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_images(self) -> ImageSet:
        """The images ``attnlab predict`` classifies: ``predict_path`` (a file or folder), else the test split."""
        if self.predict_path is None:
            self.setup()
            return self.splits["test"]
        path = self.predict_path
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"data.predict_path={path}: no image files found ({', '.join(IMAGE_SUFFIXES)})")
        channels, size = self.shape[0], self.shape[1]
        images = []
        for f in files:
            img = read_image(f)
            if img.size(0) != channels:
                img = img.expand(3, -1, -1) if channels == 3 else v2.functional.rgb_to_grayscale(img)
            images.append(v2.functional.resize(img, [size, size], antialias=True))
        return ImageSet(torch.stack(images), torch.full((len(files),), -1), self.stats["classes"],
                        [str(f) for f in files])

    def predict_dataloader(self) -> DataLoader:
        self.predict_set = self.predict_images()
        return self.loader(ImageDataset(self.predict_set, self.transform(False)), batch_size=self.eval_batch_size)
