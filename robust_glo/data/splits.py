"""Deterministic train / validation / test splits held as tensors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from robust_glo.data import sources
from robust_glo.data.registry import DATASETS, DatasetInfo, Raw, check_split_sizes, load_raw
from robust_glo.errors import DatasetError


@dataclass
class Split:
    """Images float32 `(N, C, H, W)` in [0, 1] and labels int64 `(N,)`."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, n: int | None) -> Split:
        """The first n examples (all when n is None): splits are already shuffled with a fixed seed."""
        if n is None or n >= len(self):
            return self
        return Split(self.images[:n], self.labels[:n])


@dataclass
class DatasetSplits:
    info: DatasetInfo
    train: Split
    val: Split
    test: Split
    split_seed: int
    source: str  # where the files came from


_CACHE: dict[tuple, tuple[Raw, str]] = {}


def _load_raw(name: str, root: Path, download: bool) -> tuple[Raw, str]:
    key = (name, str(root))
    if key not in _CACHE:
        _CACHE[key] = load_raw(name, root, download)
    return _CACHE[key]


def load_dataset(
    name: str,
    *,
    root: str | Path | None = None,
    val_size: int | None = None,
    test_size: int | None = None,
    train_fraction: float = 1.0,
    split_seed: int = 0,
    download: bool = True,
) -> DatasetSplits:
    """Load a dataset by name (docs/data.md) as deterministic tensor splits.

    The validation set is carved from the shuffled training set with `split_seed` (default sizes are the
    paper's, e.g. 55k/5k for MNIST). `train_fraction` keeps that share of the remaining training set
    (reduced-data experiments); `test_size` keeps a fixed subset of the test set. A `val_size` that leaves
    no training images, or a `test_size` beyond the test split, is a one-line `DatasetError`.
    """
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    if not 0.0 < train_fraction <= 1.0:
        raise DatasetError(f"train_fraction must lie in (0, 1], got {train_fraction}")
    info = DATASETS[name]
    root = Path(root) if root is not None else sources.default_root()
    (x_train, y_train, x_test, y_test, _), where = _load_raw(name, root, download)
    val_size = info.default_val_size if val_size is None else int(val_size)
    if not 0 <= val_size < len(y_train):
        raise DatasetError(f"val_size must lie in [0, {len(y_train) - 1}] for {name}, got {val_size}")
    if test_size is not None and test_size <= 0:
        raise DatasetError(f"test_size must be positive, got {test_size}")
    check_split_sizes(name, test_size=test_size, n_train=len(y_train), n_test=len(y_test))
    order = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(split_seed))
    val_idx, train_idx = order[:val_size], order[val_size:]
    n_train = max(1, int(round(train_fraction * len(train_idx))))
    train_idx = train_idx[:n_train]
    test = Split(x_test, y_test)
    if test_size is not None and test_size < len(test):
        # A seeded subset, so that small test sets still cover every class.
        pick = torch.randperm(len(test), generator=torch.Generator().manual_seed(split_seed + 1))[:test_size]
        test = Split(x_test[pick], y_test[pick])
    return DatasetSplits(
        info=info,
        train=Split(x_train[train_idx], y_train[train_idx]),
        val=Split(x_train[val_idx], y_train[val_idx]),
        test=test,
        split_seed=split_seed,
        source=where,
    )
