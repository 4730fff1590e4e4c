"""Datasets by registration: `@register_dataset(name, ...)` on a loader records its facts (docs/data.md).

The built-in datasets are registered beside their loaders in `sources.py`; a new one is one decorated
function anywhere that is imported before use (docs/extending.md#add-a-dataset).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch

from robust_glo.errors import DatasetError


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
    augment: bool = False  # random crop + flip by default (the 32x32 sets)
    # Images in the published training and test splits (None: known only once loaded). Sizes asked of a
    # split (val_size, test_size, [attack] n) are checked against them when a configuration is validated.
    n_train: int | None = None
    n_test: int | None = None


class Raw(NamedTuple):
    """What a loader returns: images float32 `(N, C, H, W)` in [0, 1], labels int64 `(N,)`, and optionally
    where the files came from (`data_source` in environment.json; default: the registered `source`)."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    source: str | None = None


Loader = Callable[[Path, bool], "Raw | tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]"]

DATASETS: dict[str, DatasetInfo] = {}
_LOADERS: dict[str, tuple[Loader, str]] = {}


def register_dataset(
    name: str,
    *,
    num_classes: int,
    image_shape: tuple[int, int, int],
    mean: tuple[float, ...],
    std: tuple[float, ...],
    default_val_size: int,
    default_model: str,
    augment: bool = False,
    n_train: int | None = None,
    n_test: int | None = None,
    source: str = "torchvision",
) -> Callable[[Loader], Loader]:
    """Register `loader(root: Path, download: bool)` as dataset `name`, with its facts (`DatasetInfo`).

    The loader returns `(train_images, train_labels, test_images, test_labels)` (or a `Raw`, whose
    `source` overrides the registered `source`, the text recorded as `data_source`).
    """
    info = DatasetInfo(
        name=name,
        num_classes=int(num_classes),
        image_shape=tuple(int(d) for d in image_shape),  # type: ignore[arg-type]
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
        default_val_size=int(default_val_size),
        default_model=default_model,
        augment=bool(augment),
        n_train=n_train,
        n_test=n_test,
    )
    if len(info.image_shape) != 3 or not (len(info.mean) == len(info.std) == info.image_shape[0]):
        raise DatasetError(f"dataset {name!r}: image_shape must be (C, H, W) with C values each in mean and std")
    if info.num_classes < 2:
        raise DatasetError(f"dataset {name!r}: num_classes must be an integer >= 2, got {num_classes!r}")
    if not all(s > 0 and s < float("inf") for s in info.std):
        raise DatasetError(
            f"dataset {name!r}: std must be positive and finite per channel (inputs are divided by it), "
            f"got {tuple(std)}"
        )

    def decorator(loader: Loader) -> Loader:
        if name in DATASETS:
            raise ValueError(f"dataset {name!r} is already registered")
        DATASETS[name] = info
        _LOADERS[name] = (loader, source)
        return loader

    return decorator


def unregister_dataset(name: str) -> None:
    """Remove a registered dataset (for tests and notebooks that register a temporary one)."""
    DATASETS.pop(name, None)
    _LOADERS.pop(name, None)


def dataset_loader(name: str) -> Loader:
    """The registered loader of dataset `name` (KeyError when there is none)."""
    return _LOADERS[name][0]


def registered_source(name: str) -> str | None:
    """The registered `source` of dataset `name` (what environment.json records when a loader gives none)."""
    return _LOADERS[name][1] if name in _LOADERS else None


def check_split_sizes(
    name: str,
    *,
    val_size: int | None = None,
    test_size: int | None = None,
    val_key: str = "val_size",
    test_key: str = "test_size",
    n_train: int | None = None,
    n_test: int | None = None,
) -> None:
    """Refuse sizes that the dataset's splits cannot give, with a one-line `DatasetError` naming the split's
    size: a `val_size` that leaves no training images, a `test_size` beyond the test split.

    The split sizes are the registered ones (`DatasetInfo.n_train`, `n_test`) unless given (those of the
    files actually loaded); a size that is not known is not checked. `val_key` / `test_key` are the
    names the user gave the sizes (`n` in a suite's [attack] table).
    """
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    info = DATASETS[name]
    n_train = info.n_train if n_train is None else n_train
    n_test = info.n_test if n_test is None else n_test
    if val_size is not None and n_train is not None and val_size >= n_train:
        raise DatasetError(
            f"{val_key} {val_size} leaves no training images: the training split of {name} has {n_train}; "
            f"give at most {n_train - 1}"
        )
    if test_size is not None and n_test is not None and test_size > n_test:
        raise DatasetError(
            f"{test_key} {test_size} is more than the {n_test} images in the test split of {name}; give at most "
            f"{n_test}, or leave it unset for the whole split"
        )


def load_raw(name: str, root: Path, download: bool) -> tuple[Raw, str]:
    """Call the registered loader; return its four tensors and where they came from, checked against the
    registered facts (a one-line `DatasetError` naming the dataset when they disagree).

    Checked: images floating point in [0, 1] (uint8 or 0-255 values are refused, naming the range seen)
    with the registered (C, H, W), made float32; labels integers in [0, num_classes), made int64; numpy
    arrays are converted to tensors, anything else refused. A `FileNotFoundError` of the loader is a
    one-line `DatasetError` naming the dataset and the folder it looked in."""
    loader, default_source = _LOADERS[name]
    try:
        out = loader(root, download)
    except FileNotFoundError as exc:
        raise DatasetError(
            f"dataset {name!r}: its loader found no files under {str(root)!r} ({exc}); put the files there, or "
            "give the folder with --data-root (data_root= in Python)"
        ) from None
    if not isinstance(out, tuple) or len(out) not in (4, 5):
        raise DatasetError(
            f"dataset {name!r}: its loader must return (train_images, train_labels, test_images, test_labels), "
            f"got {type(out).__name__}"
        )
    raw = Raw(*out)
    info = DATASETS[name]
    parts = {}
    for part, images, labels in (
        ("train", raw.train_images, raw.train_labels),
        ("test", raw.test_images, raw.test_labels),
    ):
        images = _tensor(images, name, f"{part} images")
        labels = _tensor(labels, name, f"{part} labels")
        shape = tuple(images.shape[1:])
        if images.dim() != 4 or shape != info.image_shape:
            raise DatasetError(
                f"dataset {name!r}: the loader's {part} images have shape {shape}, registered {info.image_shape}"
            )
        if labels.dim() != 1 or len(labels) != len(images):
            raise DatasetError(
                f"dataset {name!r}: the loader's {part} labels have shape {tuple(labels.shape)}; "
                f"need ({len(images)},), one per image"
            )
        if not images.is_floating_point():
            raise DatasetError(
                f"dataset {name!r}: the loader's {part} images are {str(images.dtype).removeprefix('torch.')}; "
                "return float images in [0, 1] (e.g. images.float() / 255)"
            )
        if len(images):
            low, high = float(images.min()), float(images.max())
            if not (0.0 <= low and high <= 1.0):  # NaN fails too
                raise DatasetError(
                    f"dataset {name!r}: the loader's {part} images range over [{low:g}, {high:g}]; return images "
                    "in [0, 1]" + (" (divide 0-255 values by 255)" if high > 1.0 and high <= 255.0 else "")
                )
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise DatasetError(
                f"dataset {name!r}: the loader's {part} labels are {str(labels.dtype).removeprefix('torch.')}; "
                f"return integer class indices in [0, {info.num_classes})"
            )
        if len(labels):
            low, high = int(labels.min()), int(labels.max())
            if low < 0 or high >= info.num_classes:
                raise DatasetError(
                    f"dataset {name!r}: the loader's {part} labels range over [{low}, {high}]; registered "
                    f"num_classes {info.num_classes} needs class indices in [0, {info.num_classes - 1}]"
                )
        parts[part] = (images.to(torch.float32), labels.to(torch.int64))
    checked = Raw(*parts["train"], *parts["test"], raw.source)
    return checked, raw.source or default_source


def _tensor(value: object, name: str, what: str) -> torch.Tensor:
    """A loader's array as a tensor: a torch tensor as it is, a numpy array converted; else a DatasetError."""
    if isinstance(value, torch.Tensor):
        return value
    if type(value).__module__.split(".")[0] == "numpy" and hasattr(value, "dtype"):
        import numpy as np

        return torch.from_numpy(np.ascontiguousarray(value))
    raise DatasetError(f"dataset {name!r}: the loader's {what} are a {type(value).__name__}; return torch tensors")
