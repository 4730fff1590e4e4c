"""Datasets as tensors in [0, 1] with deterministic splits, and tensor-resident batching."""

from robust_glo.data.loader import TensorLoader, iterate_eval, random_crop_flip
from robust_glo.data.registry import DATASETS, DatasetInfo, Raw, register_dataset
from robust_glo.data.splits import DatasetSplits, Split, load_dataset

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "DatasetSplits",
    "Raw",
    "Split",
    "TensorLoader",
    "iterate_eval",
    "load_dataset",
    "random_crop_flip",
    "register_dataset",
]
