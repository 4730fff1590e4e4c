"""Models by name; each owns its input normalization as its first layer."""

from robust_glo.models import architectures as _architectures  # noqa: F401  (registers the models)
from robust_glo.models.registry import (
    Normalize,
    NormalizedModel,
    check_model_fits,
    create_model,
    list_models,
    register_model,
    runs_channels_last,
    supports_channels_last,
)

__all__ = [
    "Normalize",
    "NormalizedModel",
    "check_model_fits",
    "create_model",
    "list_models",
    "register_model",
    "runs_channels_last",
    "supports_channels_last",
]
