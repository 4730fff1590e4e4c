"""Starting or joining the Ray cluster that the evolution and benchmark backends share."""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

from robust_glo.errors import ConfigError, RobustGloError

# Why a log filter: a new local cluster turns on Ray's token authentication by default (Ray 2.60, as
# installed here) and logs on every start "Token authentication is enabled for this Ray cluster. Set
# RAY_AUTH_MODE=disabled to opt out", which a robust-glo user cannot act on: the cluster is private to the
# run. A filter on the logger that writes it drops that one record, so Ray keeps its default (and secure)
# mode and every other message. Setting RAY_AUTH_MODE=token, the documented variable, would also silence
# it, but Ray reads the variable when it is imported: set after another module imported ray, the driver
# and the new cluster disagree (measured: "InvalidAuthToken ... RAY_AUTH_MODE is currently 'disabled'").
# A RAY_AUTH_MODE the user sets is honoured as before (Ray does not warn then).
_RAY_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"
_RAY_AUTH_NOTICE = "Token authentication is enabled for this Ray cluster"


class _DropRayAuthNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_RAY_AUTH_NOTICE)


def _quiet_ray_auth_notice() -> None:
    logger = logging.getLogger(_RAY_AUTH_LOGGER)
    if not any(isinstance(f, _DropRayAuthNotice) for f in logger.filters):
        logger.addFilter(_DropRayAuthNotice())


def ray_installed() -> bool:
    """Whether Ray can be imported (it is an optional extra, `robust-glo[ray]`), without importing it."""
    try:
        return importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):  # ValueError: sys.modules["ray"] is None (an import blocked on purpose)
        return False


# `logging_level=WARNING` in ray.init: Ray's driver logs "Started a local Ray instance." at INFO on every start,
# which a user cannot act on; its warnings and errors still show.
def connect_ray(address: str | None = None, num_cpus: int | None = None) -> tuple[Any, bool]:
    """The `ray` module, initialised: joined to `address`, else a local cluster of `num_cpus` CPUs (all when
    None), unless one is running already. Returns (ray, whether this call started it)."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "backend 'ray' needs Ray, which is not installed: pip install 'robust-glo[ray]', or run here with "
            "--backend local"
        ) from None
    if ray.is_initialized():
        return ray, False
    _quiet_ray_auth_notice()
    try:
        if address:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address!r}" if address else "a local Ray cluster"
        raise RobustGloError(f"cannot start or join {where}: {str(exc).splitlines()[0]}") from None
    return ray, True
