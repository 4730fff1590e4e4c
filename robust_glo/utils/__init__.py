"""Small shared helpers: devices, atomic files, run metadata."""

from robust_glo.utils.device import (
    channels_last_on,
    cpu_bf16_support,
    cpu_layout,
    native_cpu_bf16,
    parallel_cpu_workers,
    resolve_device,
    usable_cpus,
)
from robust_glo.utils.io import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json, read_json_or_none
from robust_glo.utils.metadata import run_metadata

__all__ = [
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "channels_last_on",
    "cpu_bf16_support",
    "cpu_layout",
    "native_cpu_bf16",
    "read_json",
    "read_json_or_none",
    "parallel_cpu_workers",
    "resolve_device",
    "usable_cpus",
    "run_metadata",
]
