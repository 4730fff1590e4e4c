"""Robustness comparisons: every loss trained on every seed and attacked, resumable piece by piece.

>>> from robust_glo.comparison import CompareConfig, run_comparison
>>> run_comparison(CompareConfig(losses=["ce", "baikal"], dataset="digits", seeds=[0, 1], steps=300), "runs/cmp")
"""

from robust_glo.comparison.config import EVALUATION_PROTOCOL, CompareConfig
from robust_glo.comparison.layout import loss_slug, run_dir
from robust_glo.comparison.runner import Comparison, evaluate_existing, run_comparison, summary_table
from robust_glo.comparison.user_models import load_user_model

__all__ = [
    "EVALUATION_PROTOCOL",
    "CompareConfig",
    "Comparison",
    "evaluate_existing",
    "load_user_model",
    "loss_slug",
    "run_comparison",
    "run_dir",
    "summary_table",
]
