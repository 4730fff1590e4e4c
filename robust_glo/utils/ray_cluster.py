"""Starting or joining the Ray cluster that the evolution and benchmark backends share."""

from __future__ import annotations

from typing import Any

from robust_glo.errors import ConfigError, RobustGloError


def connect_ray(address: str | None = None, num_cpus: int | None = None) -> tuple[Any, bool]:
    """The `ray` module, initialised: joined to `address`, else a local cluster of `num_cpus` CPUs (all when
    None), unless one is running already. Returns (ray, whether this call started it)."""
    try:
        import ray
    except ImportError:
        raise ConfigError("backend 'ray' needs Ray: pip install 'robust-glo[ray]'") from None
    if ray.is_initialized():
        return ray, False
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address!r}" if address else "a local Ray cluster"
        raise RobustGloError(f"cannot start or join {where}: {str(exc).splitlines()[0]}") from None
    return ray, True
