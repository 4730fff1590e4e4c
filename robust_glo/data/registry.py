"""Dataset names and their fixed facts (docs/data.md)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetInfo:
    """What a model and a split need to know about a dataset."""

    name: str
    num_classes: int
    image_shape: tuple[int, int, int]  # (C, H, W)
    mean: tuple[float, ...]  # per channel, of the training images in [0, 1]
    std: tuple[float, ...]
    default_val_size: int  # carved from the training set with a fixed seed
    default_model: str
    augment: bool  # random crop + flip by default (the 32x32 sets)


DATASETS: dict[str, DatasetInfo] = {
    "fashion-mnist": DatasetInfo("fashion-mnist", 10, (1, 28, 28), (0.2860,), (0.3530,), 5000, "small-cnn", False),
    "mnist": DatasetInfo("mnist", 10, (1, 28, 28), (0.1307,), (0.3081,), 5000, "small-cnn", False),
    "cifar10": DatasetInfo(
        "cifar10", 10, (3, 32, 32), (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), 5000, "allcnn-c", True
    ),
    "cifar100": DatasetInfo(
        "cifar100", 100, (3, 32, 32), (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), 5000, "resnet20", True
    ),
    "svhn": DatasetInfo(
        "svhn", 10, (3, 32, 32), (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), 5000, "resnet20", True
    ),
    "digits": DatasetInfo("digits", 10, (1, 8, 8), (0.3050,), (0.3764,), 180, "digits-cnn", False),
}
