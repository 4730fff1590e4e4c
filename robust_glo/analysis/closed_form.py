"""Closed-form TaylorGLO learning rule (docs/method.md), vectorised with numpy.

Outputs are on the symmetric path: target probability p, every other class q = (1 - p)/(n - 1). With
f'_t = f'(1, p) and f'_o = f'(0, q):

    pull  =  p (1 - p) f'_t                  (the target's own term of -dL/dz_t)
    push  = -p (n - 1) q f'_o                (the other classes' term)
    -dL/dz_t = pull + push = p (1 - p) (f'_t - f'_o)
    -dL/dz_k = -p q (f'_t - f'_o)            (any non-target k)

Because q is linear in p, the residual r(p) = f'_t - f'_o is a quadratic in p, so the effective target
p* has a closed form; `effective_target_batch` solves it for many thetas at once (the invariant study
uses it). It follows the same definition as `robust_glo.analysis.learning_rule.effective_target`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from robust_glo.analysis.invariant import as_theta_array, check_classes, coefficients, coefficients_batch


def symmetric_rule(
    theta: Sequence[float] | np.ndarray, n_classes: int, p: np.ndarray | Sequence[float]
) -> dict[str, np.ndarray]:
    """The learning rule of one theta ``(8,)`` at target probabilities p ``(K,)``, each array ``(K,)``.

    Keys: ``fprime_target``, ``fprime_other``, ``pull``, ``push``, ``target_grad`` (-dL/dz_t),
    ``nontarget_grad`` (-dL/dz_k for one non-target k).
    """
    n = check_classes(n_classes)
    c = coefficients(theta)
    p = np.asarray(p, dtype=np.float64)
    q = (1.0 - p) / (n - 1)
    ft = np.asarray(c.fprime(1.0, p))
    fo = np.asarray(c.fprime(0.0, q))
    pull = p * (1.0 - p) * ft
    push = -p * (n - 1) * q * fo
    return {
        "fprime_target": ft,
        "fprime_other": fo,
        "pull": pull,
        "push": push,
        "target_grad": pull + push,
        "nontarget_grad": -p * q * (ft - fo),
    }


def residual_quadratic(thetas: np.ndarray | Sequence[Sequence[float]], n_classes: int) -> np.ndarray:
    """Coefficients ``(M, 3)`` = (A, B, C) with f'(1, p) - f'(0, (1-p)/(n-1)) = A p^2 + B p + C."""
    n = check_classes(n_classes)
    c1, ch, chh, cx, cxx, chx = coefficients_batch(thetas).T
    a = 1.0 / (n - 1)  # q = a + b p with b = -a
    b = -a
    quad_a = chh * (1.0 - b * b)
    quad_b = ch + chx - ch * b - 2.0 * chh * a * b
    quad_c = cx + cxx - ch * a - chh * a * a
    return np.stack([quad_a, quad_b, quad_c], axis=1)


def effective_target_batch(thetas: np.ndarray | Sequence[Sequence[float]], n_classes: int) -> np.ndarray:
    """Effective target p* of every row of thetas ``(M, 8)``: float array ``(M,)``, NaN where none.

    p* is the stable rest point reached from uniform outputs p = 1/n: if the target logit rises there,
    the first sign change of -dL/dz_t above 1/n (NaN when it keeps rising up to p = 1); if it falls,
    the first sign change below 1/n (0 when it falls all the way); 1/n when it does not move.
    Rows with non-finite parameters give NaN.
    """
    n = check_classes(n_classes)
    array = as_theta_array(thetas)
    p0 = 1.0 / n
    with np.errstate(all="ignore"):
        qa, qb, qc = residual_quadratic(array, n).T
        r0 = (qa * p0 + qb) * p0 + qc
        disc = qb * qb - 4.0 * qa * qc
        sq = np.sqrt(np.where(disc > 0, disc, np.nan))  # a double root is no sign change
        half = -0.5 * (qb + np.copysign(sq, qb))  # numerically stable quadratic formula
        roots = np.stack([half / qa, qc / half], axis=1)  # inf/nan where a root does not exist
        roots = np.where(np.isfinite(roots), roots, np.nan)

        above = np.where((roots > p0) & (roots < 1.0), roots, np.inf).min(axis=1)
        below = np.where((roots > 0.0) & (roots < p0), roots, -np.inf).max(axis=1)
        result = np.full(array.shape[0], np.nan)
        rising, falling = r0 > 0, r0 < 0
        result[rising] = np.where(np.isfinite(above[rising]), above[rising], np.nan)
        result[falling] = np.where(np.isfinite(below[falling]), below[falling], 0.0)
        result[r0 == 0] = p0
    result[~np.isfinite(array).all(axis=1)] = np.nan
    return result
