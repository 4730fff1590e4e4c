"""robust-glo: evolve TaylorGLO loss functions with CMA-ES and measure their adversarial robustness.

The short public API; each subpackage is one stage of the pipeline:
data -> models -> losses -> training -> evolution -> robustness (attacks) -> analysis -> reporting -> cli.
"""
from robust_glo.errors import RobustGloError
from robust_glo.losses import get_loss, list_losses, register_loss
from robust_glo.models import create_model, list_models, register_model

__version__ = "0.1.0"
__all__ = ["RobustGloError", "__version__", "create_model", "get_loss", "list_losses", "list_models",
           "register_loss", "register_model"]
