"""Losses by spec string (docs/losses.md): `get_loss("label_smoothing:0.1")(logits, targets) -> scalar`.

Built-ins are registered with `@register_loss`; a user loss is `package.module:function` or
`path/to/file.py:function`, a function `(logits (N, C), targets (N,)) -> scalar tensor`.
"""

from __future__ import annotations

import re

from robust_glo.errors import LossSpecError
from robust_glo.losses import builtin as _builtin  # noqa: F401  (registers the built-ins)
from robust_glo.losses import taylorglo as _taylorglo  # noqa: F401
from robust_glo.losses.base import LossEntry, LossFn, list_losses, register_loss, registry
from robust_glo.losses.builtin import BaikalLoss, CrossEntropy, FocalLoss, Poly1Loss
from robust_glo.losses.display import display_name, set_display_name, shorten_specs
from robust_glo.losses.taylorglo import TaylorGLOLoss, load_theta_file, save_theta_file, taylorglo_f
from robust_glo.losses.user import UserLoss, load_user_loss

_MODULE_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def get_loss(spec: str) -> LossFn:
    """Resolve a loss spec to a callable `loss(logits (N, C), targets (N,)) -> scalar tensor`.

    Raises `LossSpecError`, naming the spec, when it cannot be resolved.
    """
    if not isinstance(spec, str):
        raise LossSpecError(
            f"loss spec {spec!r} must be a string such as 'ce'; valid specs: {', '.join(list_losses())}"
        )
    if not spec.strip():
        raise LossSpecError(f"loss spec {spec!r} is empty; valid specs: {', '.join(list_losses())}")
    spec = spec.strip()
    head, sep, arg = spec.partition(":")
    entries = registry()
    if head in entries:
        return entries[head].factory(arg if sep else None, spec)
    if sep:
        location, _, attribute = spec.rpartition(":")
        if _IDENTIFIER.match(attribute) and (location.endswith(".py") or _MODULE_PATH.match(location)):
            return load_user_loss(location, attribute, spec)
    raise LossSpecError(f"unknown loss spec {spec!r}; valid specs: {', '.join(list_losses())}")


__all__ = [
    "BaikalLoss",
    "CrossEntropy",
    "FocalLoss",
    "LossEntry",
    "LossFn",
    "LossSpecError",
    "Poly1Loss",
    "TaylorGLOLoss",
    "UserLoss",
    "display_name",
    "get_loss",
    "list_losses",
    "load_theta_file",
    "register_loss",
    "registry",
    "save_theta_file",
    "set_display_name",
    "shorten_specs",
    "taylorglo_f",
]
