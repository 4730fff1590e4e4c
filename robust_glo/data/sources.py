"""The built-in datasets, each registered beside its loader with `@register_dataset` (docs/data.md).

A loader `load(root, download)` returns `(train_images, train_labels, test_images, test_labels)`:
images float32 `(N, C, H, W)` in [0, 1], labels int64 `(N,)`. Where torchvision is used, it downloads
when allowed; the files it finds under the data root are used as they are.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch

from robust_glo.data.registry import Raw, register_dataset
from robust_glo.errors import DatasetError

DIGITS_TEST_SIZE = 360  # scikit-learn's digits: a fixed test split of 360 of its 1,797 images

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def default_root() -> Path:
    return Path(os.environ.get("ROBUST_GLO_DATA", Path.home() / ".cache" / "robust-glo" / "data"))


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped), as used by (Fashion-)MNIST."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DatasetError(f"{str(path)!r} is not an unsigned-byte IDX file")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(dims)):
        raise DatasetError(f"{str(path)!r} is truncated: expected {int(np.prod(dims))} values, got {array.size}")
    return array.reshape(dims)


def _find_idx(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _images(array: np.ndarray) -> torch.Tensor:
    """uint8 `(N, H, W)` or `(N, H, W, C)` or `(N, C, H, W)` -> float32 `(N, C, H, W)` in [0, 1]."""
    t = torch.from_numpy(np.array(array, copy=True))  # own, writable memory
    if t.dim() == 3:
        t = t.unsqueeze(1)
    return t.float().div_(255.0)


def _labels(array) -> torch.Tensor:
    if isinstance(array, torch.Tensor):
        return array.to(torch.int64).reshape(-1).clone()
    return torch.as_tensor(np.array(array, dtype=np.int64)).reshape(-1)


def _idx_dir_raw(directory: Path) -> Raw | None:
    """The four Fashion-MNIST IDX files in `directory` (None when one is missing)."""
    paths = {k: _find_idx(directory, v) for k, v in FASHION_FILES.items()}
    if any(p is None for p in paths.values()):
        return None
    return Raw(
        _images(read_idx(paths["train_images"])),
        _labels(read_idx(paths["train_labels"])),
        _images(read_idx(paths["test_images"])),
        _labels(read_idx(paths["test_labels"])),
    )


def fashion_mnist_search_path(root: Path) -> list[Path]:
    """Where Fashion-MNIST IDX files are looked for, in order (docs/data.md)."""
    return [root / "fashion-mnist", root / "FashionMNIST" / "raw", DEBIAN_FASHION_MNIST]


@register_dataset(
    "fashion-mnist",
    num_classes=10,
    image_shape=(1, 28, 28),
    mean=(0.2860,),
    std=(0.3530,),
    default_val_size=5000,
    default_model="small-cnn",
    n_train=60000,
    n_test=10000,
)
def load_fashion_mnist(root: Path, download: bool) -> Raw:
    for directory in fashion_mnist_search_path(root):
        raw = _idx_dir_raw(directory)
        if raw is not None:
            return raw._replace(source=str(directory))
    return _torchvision(
        "FashionMNIST",
        root,
        download,
        hint=(
            "install Debian's package (apt-get install dataset-fashion-mnist) or put the four IDX files in "
            f"{root / 'fashion-mnist'}"
        ),
    )


@register_dataset(
    "mnist",
    num_classes=10,
    image_shape=(1, 28, 28),
    mean=(0.1307,),
    std=(0.3081,),
    default_val_size=5000,
    default_model="small-cnn",
    n_train=60000,
    n_test=10000,
)
def load_mnist(root: Path, download: bool) -> Raw:
    return _torchvision("MNIST", root, download, hint=f"put the MNIST IDX files in {root / 'MNIST' / 'raw'}")


@register_dataset(
    "cifar10",
    num_classes=10,
    image_shape=(3, 32, 32),
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2470, 0.2435, 0.2616),
    default_val_size=5000,
    default_model="allcnn-c",
    augment=True,
    n_train=50000,
    n_test=10000,
)
def load_cifar10(root: Path, download: bool) -> Raw:
    return _torchvision("CIFAR10", root, download, hint=f"put the python-version archive contents under {root}")


@register_dataset(
    "cifar100",
    num_classes=100,
    image_shape=(3, 32, 32),
    mean=(0.5071, 0.4865, 0.4409),
    std=(0.2673, 0.2564, 0.2762),
    default_val_size=5000,
    default_model="resnet20",
    augment=True,
    n_train=50000,
    n_test=10000,
)
def load_cifar100(root: Path, download: bool) -> Raw:
    return _torchvision("CIFAR100", root, download, hint=f"put the python-version archive contents under {root}")


@register_dataset(
    "svhn",
    num_classes=10,
    image_shape=(3, 32, 32),
    mean=(0.4377, 0.4438, 0.4728),
    std=(0.1980, 0.2010, 0.1970),
    default_val_size=5000,
    default_model="resnet20",
    augment=True,
    n_train=73257,
    n_test=26032,
)
def load_svhn(root: Path, download: bool) -> Raw:
    return _torchvision("SVHN", root, download, hint=f"put train_32x32.mat and test_32x32.mat in {root / 'svhn'}")


def _torchvision(cls_name: str, root: Path, download: bool, hint: str) -> Raw:
    import torchvision.datasets as tvd

    cls = getattr(tvd, cls_name)
    try:
        if cls_name == "SVHN":
            train = cls(str(root / "svhn"), split="train", download=download)
            test = cls(str(root / "svhn"), split="test", download=download)
        else:
            train = cls(str(root), train=True, download=download)
            test = cls(str(root), train=False, download=download)
    except (RuntimeError, OSError) as exc:  # torchvision: "Dataset not found" or a failed download
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DatasetError(
            f"{cls_name} not found under {str(root)!r} and could not be downloaded ({first}); {hint}"
        ) from None
    out = []
    for split in (train, test):
        data = split.data
        data = data.numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
        if cls_name.startswith("CIFAR"):
            data = data.transpose(0, 3, 1, 2)  # NHWC -> NCHW
        labels = split.labels if cls_name == "SVHN" else split.targets
        out += [_images(data), _labels(labels)]
    return Raw(out[0], out[1], out[2], out[3])


@register_dataset(
    "digits",
    num_classes=10,
    image_shape=(1, 8, 8),
    mean=(0.3050,),
    std=(0.3764,),
    default_val_size=180,
    default_model="digits-cnn",
    n_train=1797 - DIGITS_TEST_SIZE,
    n_test=DIGITS_TEST_SIZE,
    source="scikit-learn",
)
def load_digits(root: Path, download: bool) -> Raw:
    """scikit-learn's bundled 8x8 digits (values 0..16; no files, no download): `load_digits_raw()`."""
    return load_digits_raw()


def load_digits_raw(test_size: int = DIGITS_TEST_SIZE, seed: int = 0) -> Raw:
    """scikit-learn's bundled 8x8 digits (values 0..16), split into train/test with a fixed seed."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    test, train = order[:test_size], order[test_size:]
    return Raw(images[train], labels[train], images[test], labels[test])
