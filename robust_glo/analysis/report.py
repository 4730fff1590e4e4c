"""`analyze_loss`: everything the analysis says about one loss, as a dataclass and as JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from robust_glo.analysis.invariant import RULES, check_classes, coefficients, invariant_holds
from robust_glo.analysis.learning_rule import (
    Gauge,
    LearningRule,
    check_gauge,
    effective_target,
    label_smoothing_equivalent,
    learning_rule,
    resolve_loss,
)


@dataclass
class LossAnalysis:
    """The analysis of one loss for ``classes`` classes (docs/method.md).

    ``effective_target`` is p* (None when the loss pursues p -> 1), ``label_smoothing_equivalent`` the
    alpha with the same p*, ``target_logit_gradient_at_init`` is -dL/dz_t at uniform outputs,
    ``invariant`` maps each rule to pass/fail (TaylorGLO only), ``decomposition`` is how pull and push
    were split ("probabilities" or "centred", see `robust_glo.analysis.learning_rule`). ``rule`` holds
    the curves for figures and is left out of `to_dict`.
    """

    spec: str
    classes: int
    effective_target: float | None
    label_smoothing_equivalent: float | None
    target_logit_rises_at_init: bool
    target_logit_gradient_at_init: float
    decomposition: str
    invariant: dict[str, bool] | None = None
    theta: list[float] | None = None
    coefficients: dict[str, float] | None = None
    warnings: list[str] = field(default_factory=list)
    rule: LearningRule | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (no NaN or infinity) with the keys of the `analyze --json` output."""
        out: dict[str, Any] = {
            "spec": self.spec,
            "classes": self.classes,
            "effective_target": self.effective_target,
            "label_smoothing_equivalent": self.label_smoothing_equivalent,
            "target_logit_rises_at_init": self.target_logit_rises_at_init,
            "target_logit_gradient_at_init": self.target_logit_gradient_at_init,
            "invariant": self.invariant,
            "decomposition": self.decomposition,
        }
        if self.theta is not None:
            out["theta"] = self.theta
            out["coefficients"] = self.coefficients
        out["warnings"] = list(self.warnings)
        return out


def analyze_loss(loss: object, n_classes: int, *, gauge: Gauge = "auto", curves: bool = False) -> LossAnalysis:
    """Analyze a loss (a spec string such as ``"label_smoothing:0.1"``, or a loss callable) for
    ``n_classes`` classes. ``curves`` also computes the learning rule along p for figures (``.rule``).

    Raises `LossSpecError` for a spec that cannot be resolved or a loss that fails during the analysis,
    `ConfigError` for ``n_classes < 2`` or an unknown ``gauge``.
    """
    n = check_classes(n_classes)
    loss = resolve_loss(loss)
    gauge = check_gauge(gauge, loss)
    target = effective_target(loss, n)
    theta = getattr(loss, "theta", None)
    invariant = coeffs = theta_list = None
    if theta is not None:
        theta_list = [float(v) for v in theta]
        invariant = {rule: invariant_holds(theta_list, n, rule) for rule in RULES}
        coeffs = coefficients(theta_list).to_dict()
    return LossAnalysis(
        spec=str(loss.spec),
        classes=n,
        effective_target=target.value,
        label_smoothing_equivalent=label_smoothing_equivalent(target.value, n),
        target_logit_rises_at_init=bool(target.target_grad_at_init > 0),
        target_logit_gradient_at_init=float(target.target_grad_at_init),
        decomposition=gauge,
        invariant=invariant,
        theta=theta_list,
        coefficients=coeffs,
        warnings=target.warnings,
        rule=learning_rule(loss, n, gauge=gauge) if curves else None,
    )
