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
    folder                      ``path`` is an image folder with ``train/`` and optionally ``val/`` (or
                                ``validation/``) and ``test/`` sub-folders of one folder per class (torchvision
                                ImageFolder layout), or a ``.tar`` of one, which is extracted once under ``root``
    torchvision                 any ``torchvision.datasets`` class by name (``dataset``, ``dataset_args``)

Images of any size reach the model's square input as timm's eval transform does (``resize``: shorter side resized,
centre crop), on reading and in predict alike.

Validation images come from the source's own validation split when it has one, else from the training split
(``val_fraction``, stratified, ``split_seed``);
``train_subset`` keeps that fraction of the remaining training images (stratified), for data-size sweeps.

One concern per module: ``images`` (decoding files and folders, tar archives), ``cache`` (decoded folders on
disk), ``resize`` (shorter side + centre crop), ``sources`` (digits, torchvision's MNIST/CIFAR, stratified splits),
``torchvision_class`` (any torchvision dataset class) and ``datamodule`` (``VisionData``). The names
below are the package's public interface; configs name ``datamodules.vision.VisionData``, which keeps resolving.
"""

from .cache import read_folder_cached
from .datamodule import ImageDataset, VisionData
from .images import IMAGE_SUFFIXES, ImageError, ImageSet, extract_tar, list_images, read_folder, read_image
from .resize import TIMM_CROP_PCT, ResizeCrop, common_size, resize_crop, scale_size
from .sources import SOURCES, Source, load_digits, load_torchvision, stratified_split
from .torchvision_class import dataset_class, load_dataset_splits, to_image_set

__all__ = [
    "IMAGE_SUFFIXES", "SOURCES", "TIMM_CROP_PCT", "ImageDataset", "ImageError", "ImageSet", "ResizeCrop", "Source",
    "VisionData", "common_size", "dataset_class", "extract_tar", "list_images", "load_dataset_splits", "load_digits",
    "load_torchvision", "read_folder", "read_folder_cached", "read_image", "resize_crop", "scale_size",
    "stratified_split", "to_image_set",
]
