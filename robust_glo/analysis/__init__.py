"""Loss analysis (docs/method.md): why a loss regularizes, and which TaylorGLO candidates to train.

    from robust_glo.analysis import analyze_loss
    a = analyze_loss("label_smoothing:0.1", 10)   # a.effective_target ≈ 0.91 = 1 - 0.1 + 0.1/10
    a.to_dict()                                   # the `robust-glo analyze --json` record

- `analyze_loss(loss, n_classes) -> LossAnalysis`: effective target p*, label-smoothing equivalent,
  whether the target logit rises at initialization, and the invariant for TaylorGLO.
- `learning_rule(loss, n_classes, p) -> LearningRule`: -dL/dz on the target and a non-target logit along
  p, with the pull and push terms; `decompose(loss, probs, targets)` at arbitrary outputs.
- `invariant_holds(theta, n, rule)` / `invariant_holds_batch(thetas (M, 8), n, rule)`: rules "paper" and
  "exact"; `coefficients(theta)`: the closed-form df/dy coefficients.
- `effective_target_batch(thetas (M, 8), n)`: closed-form p* for many TaylorGLO thetas.
- `plot_analyses(analyses, out_dir)` (in `robust_glo.analysis.figures`, imported lazily): PNG and SVG.
"""

from __future__ import annotations

from robust_glo.analysis.closed_form import effective_target_batch, symmetric_rule
from robust_glo.analysis.invariant import (
    COEFFICIENT_NAMES,
    RULES,
    Coefficients,
    coefficients,
    coefficients_batch,
    invariant_holds,
    invariant_holds_batch,
    invariant_margin_batch,
)
from robust_glo.analysis.learning_rule import (
    GAUGES,
    Decomposition,
    EffectiveTarget,
    LearningRule,
    decompose,
    effective_target,
    label_smoothing_equivalent,
    learning_rule,
)
from robust_glo.analysis.report import LossAnalysis, analyze_loss


def plot_analyses(*args, **kwargs):
    """See `robust_glo.analysis.figures.plot_analyses` (imported on first use: matplotlib is slow)."""
    # lazy: figures loads seaborn and matplotlib, which analysis (imported by evolution and the CLI) does not need
    from robust_glo.analysis.figures import plot_analyses as _plot

    return _plot(*args, **kwargs)


__all__ = [
    "COEFFICIENT_NAMES",
    "Coefficients",
    "Decomposition",
    "EffectiveTarget",
    "GAUGES",
    "LearningRule",
    "LossAnalysis",
    "RULES",
    "analyze_loss",
    "coefficients",
    "coefficients_batch",
    "decompose",
    "effective_target",
    "effective_target_batch",
    "invariant_holds",
    "invariant_holds_batch",
    "invariant_margin_batch",
    "label_smoothing_equivalent",
    "learning_rule",
    "plot_analyses",
    "symmetric_rule",
]
