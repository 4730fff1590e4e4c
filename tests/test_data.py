"""Datasets: names, splits, the Fashion-MNIST search order, torchvision loaders on small files we make."""

import gzip
import pickle

import numpy as np
import pytest
import torch

from robust_glo.data import DATASETS, Split, TensorLoader, load_dataset, random_crop_flip
from robust_glo.data import splits as splits_module
from robust_glo.data.sources import DEBIAN_FASHION_MNIST
from robust_glo.errors import DatasetError


def _write_idx(path, array: np.ndarray, gz: bool = False):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    (gzip.open if gz else open)(path, "wb").write(data)


def _fake_mnist_dir(directory, n_train=40, n_test=20, gz=False, value=7):
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    _write_idx(directory / f"train-images-idx3-ubyte{suffix}", np.full((n_train, 28, 28), value), gz)
    _write_idx(directory / f"train-labels-idx1-ubyte{suffix}", rng.integers(0, 10, n_train), gz)
    _write_idx(directory / f"t10k-images-idx3-ubyte{suffix}", np.full((n_test, 28, 28), value), gz)
    _write_idx(directory / f"t10k-labels-idx1-ubyte{suffix}", rng.integers(0, 10, n_test), gz)


@pytest.fixture(autouse=True)
def _clear_cache():
    splits_module._CACHE.clear()
    yield
    splits_module._CACHE.clear()


def test_digits_splits_are_deterministic_and_in_range():
    a = load_dataset("digits", split_seed=3)
    b = load_dataset("digits", split_seed=3)
    c = load_dataset("digits", split_seed=4)
    assert torch.equal(a.val.labels, b.val.labels) and torch.equal(a.train.images, b.train.images)
    assert not torch.equal(a.val.labels, c.val.labels)
    assert a.train.images.dtype == torch.float32 and a.train.labels.dtype == torch.int64
    assert a.train.images.shape[1:] == (1, 8, 8)
    assert 0.0 <= float(a.train.images.min()) and float(a.train.images.max()) <= 1.0
    assert len(a.val) == DATASETS["digits"].default_val_size
    assert len(a.train) + len(a.val) + len(a.test) == 1797


def test_validation_is_disjoint_from_training_and_sizes_configurable():
    s = load_dataset("digits", val_size=100, test_size=50, train_fraction=0.5)
    assert len(s.val) == 100 and len(s.test) == 50
    full = load_dataset("digits", val_size=100)
    assert len(s.train) == round(0.5 * len(full.train))
    train_rows = {tuple(r.tolist()) for r in full.train.images.flatten(1)}
    overlap = sum(tuple(r.tolist()) in train_rows for r in full.val.images.flatten(1))
    assert overlap < 5  # digits has a few duplicate images; the index sets themselves are disjoint


def test_fashion_mnist_uses_data_root_before_debian(tmp_path):
    _fake_mnist_dir(tmp_path / "fashion-mnist", value=255)
    s = load_dataset("fashion-mnist", root=tmp_path, val_size=10)
    assert s.source == str(tmp_path / "fashion-mnist")
    assert len(s.train) == 30 and len(s.val) == 10 and len(s.test) == 20
    assert float(s.train.images.max()) == 1.0


@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(), reason="Debian's dataset-fashion-mnist not installed")
def test_fashion_mnist_from_debian_has_paper_split(tmp_path):
    s = load_dataset("fashion-mnist", root=tmp_path)
    assert s.source == str(DEBIAN_FASHION_MNIST)
    assert (len(s.train), len(s.val), len(s.test)) == (55000, 5000, 10000)
    assert s.train.images.shape[1:] == (1, 28, 28)


def test_mnist_through_torchvision_on_small_files(tmp_path):
    _fake_mnist_dir(tmp_path / "MNIST" / "raw", n_train=30, n_test=12)
    s = load_dataset("mnist", root=tmp_path, val_size=5, download=False)
    assert (len(s.train), len(s.val), len(s.test)) == (25, 5, 12)
    assert float(s.test.images.max()) == pytest.approx(7 / 255)


def test_cifar10_through_torchvision_on_small_files(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as cifar

    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    rng = np.random.default_rng(0)
    for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]:
        data = rng.integers(0, 256, (4, 3072), dtype=np.uint8)
        pickle.dump({"data": data, "labels": rng.integers(0, 10, 4).tolist()}, open(base / name, "wb"))
    pickle.dump({"label_names": [str(i) for i in range(10)]}, open(base / "batches.meta", "wb"))
    # The md5 sums of our small files differ from the real archive's; the loading path is what we test.
    monkeypatch.setattr(cifar.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(cifar, "check_integrity", lambda *a, **k: True)
    s = load_dataset("cifar10", root=tmp_path, val_size=4, download=False)
    assert s.train.images.shape == (16, 3, 32, 32) and s.test.images.shape == (4, 3, 32, 32)
    raw = pickle.load(open(base / "test_batch", "rb"))["data"].reshape(4, 3, 32, 32)
    assert torch.allclose(s.test.images, torch.from_numpy(raw).float() / 255)


def test_svhn_through_torchvision_on_small_files(tmp_path, monkeypatch):
    import scipy.io
    import torchvision.datasets.svhn as svhn

    d = tmp_path / "svhn"
    d.mkdir()
    rng = np.random.default_rng(0)
    for name, n in [("train_32x32.mat", 6), ("test_32x32.mat", 3)]:
        scipy.io.savemat(
            d / name,
            {
                "X": rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8),
                "y": np.array([[10], [1], [2], [3], [4], [5]][:n], dtype=np.uint8),
            },
        )
    monkeypatch.setattr(svhn.SVHN, "_check_integrity", lambda self: True)
    s = load_dataset("svhn", root=tmp_path, val_size=2, download=False)
    assert s.test.images.shape == (3, 3, 32, 32)
    assert s.test.labels.tolist() == [0, 1, 2]  # SVHN's label 10 is the digit 0


def test_missing_data_gives_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="MNIST not found under .* put the MNIST IDX files"):
        load_dataset("mnist", root=tmp_path, download=False)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"name": "imagenet"}, "unknown dataset 'imagenet'; valid: fashion-mnist"),
        ({"name": "digits", "train_fraction": 0.0}, "train_fraction"),
        ({"name": "digits", "val_size": 5000}, "val_size must lie in"),
        ({"name": "digits", "test_size": 0}, "test_size must be positive"),
    ],
)
def test_bad_arguments(kwargs, match):
    name = kwargs.pop("name")
    with pytest.raises(DatasetError, match=match):
        load_dataset(name, **kwargs)


def _split(n=50):
    g = torch.Generator().manual_seed(0)
    return Split(torch.rand(n, 3, 8, 8, generator=g), torch.arange(n))


def test_loader_same_seed_same_batches_and_resume_replays():
    a = list(TensorLoader(_split(), batch_size=16, seed=1, augment=True).iterate(7))
    b = list(TensorLoader(_split(), batch_size=16, seed=1, augment=True).iterate(7))
    c = list(TensorLoader(_split(), batch_size=16, seed=1, augment=True).iterate(7, start_step=4))
    assert len(a) == 7 and all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b))
    assert all(torch.equal(x[0], y[0]) for x, y in zip(a[4:], c))
    epoch = torch.cat([y for _, y in a[:3]])  # 3 full batches of 16 from 50: no repeats within an epoch
    assert len(set(epoch.tolist())) == 48


def test_random_crop_flip_is_a_shifted_or_flipped_window():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6)
    g = torch.Generator().manual_seed(0)
    out = random_crop_flip(x, g, padding=2)
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):
        windows = [padded[i, :, r : r + 6, c : c + 6] for r in range(5) for c in range(5)]
        assert any(torch.equal(out[i], w) or torch.equal(out[i], w.flip(-1)) for w in windows)


# ------------------------------------------------------------------------ datasets by registration

_FIELDS = dict(num_classes=2, image_shape=(1, 2, 2), mean=(0.5,), std=(0.5,), default_val_size=1, default_model="mlp")


def test_a_registered_dataset_works_everywhere_by_name(tmp_path):
    """One decorator beside the loader is the whole registration: load_dataset, configs and the CLI see it."""
    from robust_glo.data import Raw, register_dataset
    from robust_glo.data import registry as registry_module
    from robust_glo.training import TrainConfig

    seen = {}

    @register_dataset(
        "tiny-test-set",
        num_classes=3,
        image_shape=(1, 4, 4),
        mean=(0.5,),
        std=(0.25,),
        default_val_size=2,
        default_model="mlp",
        n_train=12,
        n_test=6,
    )
    def load_tiny(root, download):
        seen["root"], seen["download"] = root, download
        g = torch.Generator().manual_seed(0)
        images = torch.rand(18, 1, 4, 4, generator=g)
        labels = torch.arange(18) % 3
        return Raw(images[:12], labels[:12], images[12:], labels[12:], source="generated")

    try:
        assert DATASETS["tiny-test-set"].num_classes == 3
        s = load_dataset("tiny-test-set", root=tmp_path, download=False)
        assert (len(s.train), len(s.val), len(s.test)) == (10, 2, 6)
        assert s.source == "generated" and seen == {"root": tmp_path, "download": False}
        assert TrainConfig(dataset="tiny-test-set").resolved().model == "mlp"
        with pytest.raises(ValueError, match="already registered"):
            register_dataset("tiny-test-set", **_FIELDS)(load_tiny)
    finally:
        registry_module.unregister_dataset("tiny-test-set")
    assert "tiny-test-set" not in DATASETS


def test_a_loader_returning_a_plain_tuple_records_the_registered_source(tmp_path):
    from robust_glo.data import register_dataset
    from robust_glo.data import registry as registry_module

    @register_dataset("plain-test-set", **_FIELDS, source="mine")
    def load_plain(root, download):
        x = torch.zeros(6, 1, 2, 2)
        y = torch.tensor([0, 1, 0, 1, 0, 1])
        return x, y, x[:2], y[:2]

    try:
        s = load_dataset("plain-test-set", root=tmp_path)
        assert s.source == "mine" and (len(s.train), len(s.val), len(s.test)) == (5, 1, 2)
    finally:
        registry_module.unregister_dataset("plain-test-set")


def test_a_loader_returning_the_wrong_shapes_is_named(tmp_path):
    from robust_glo.data import register_dataset
    from robust_glo.data import registry as registry_module

    @register_dataset("bad-test-set", **_FIELDS)
    def load_bad(root, download):
        x = torch.zeros(6, 1, 3, 3)  # not the registered (1, 2, 2)
        y = torch.zeros(6, dtype=torch.int64)
        return x, y, x, y

    try:
        with pytest.raises(DatasetError, match=r"dataset 'bad-test-set'.*\(1, 3, 3\).*\(1, 2, 2\)"):
            load_dataset("bad-test-set", root=tmp_path)
    finally:
        registry_module.unregister_dataset("bad-test-set")


def test_every_builtin_dataset_is_registered_beside_its_loader():
    from robust_glo.data import registry as registry_module
    from robust_glo.data import sources

    assert list(DATASETS) == ["fashion-mnist", "mnist", "cifar10", "cifar100", "svhn", "digits"]
    for name in DATASETS:
        loader = registry_module.dataset_loader(name)
        assert loader.__module__ == sources.__name__, name


# ------------------------------------------------------------------------------- sizes against the data


def test_a_test_size_larger_than_the_test_split_is_refused_naming_its_size():
    with pytest.raises(DatasetError, match=r"^test_size 5000 is more than the 360 images in the test split of digits"):
        load_dataset("digits", test_size=5000)
    assert len(load_dataset("digits", test_size=360).test) == 360  # exactly the whole split is fine


def test_sizes_are_checked_against_the_loaded_files_too(tmp_path):
    _fake_mnist_dir(tmp_path / "MNIST" / "raw", n_train=30, n_test=12)
    with pytest.raises(DatasetError, match="test_size 100 is more than the 12 images in the test split of mnist"):
        load_dataset("mnist", root=tmp_path, val_size=5, test_size=100, download=False)


@pytest.mark.parametrize(
    "options, expected",
    [
        (
            {"test_size": 5000},
            "test_size 5000 is more than the 360 images in the test split of digits; give at most 360",
        ),
        ({"val_size": 5000}, "val_size 5000 leaves no training images: the training split of digits has 1437"),
    ],
)
def test_sizes_are_refused_when_a_config_is_validated_before_any_data_or_training(tmp_path, options, expected):
    import robust_glo
    from robust_glo.errors import RobustGloError
    from robust_glo.evolution import EvolveConfig
    from robust_glo.training import TrainConfig

    with pytest.raises(RobustGloError) as info:
        TrainConfig.from_dict({"dataset": "digits", **options}).resolved()
    assert expected in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(RobustGloError, match=expected.split(";")[0]):
        robust_glo.train("ce", dataset="digits", steps=5, out=tmp_path / "run", **options)
    assert not (tmp_path / "run" / "metrics.json").exists()
    if "val_size" in options:
        with pytest.raises(RobustGloError, match=expected.split(";")[0]):
            EvolveConfig.create(dataset="digits", out=str(tmp_path / "evo"), **options)


def test_a_comparison_refuses_a_test_size_the_dataset_does_not_have():
    from robust_glo.comparison import CompareConfig
    from robust_glo.errors import RobustGloError

    with pytest.raises(RobustGloError, match="test_size 361 is more than the 360 images in the test split of digits"):
        CompareConfig(dataset="digits", test_size=361).validated()
    assert CompareConfig(dataset="digits", test_size=360).validated().test_size == 360
