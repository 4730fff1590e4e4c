"""The numeric precision a training run computes in: "fp32", "bf16", or "auto" (chosen per machine).

- "fp32": float32 throughout. On CUDA the older switch `amp = true` still turns on bfloat16 autocast.
- "bf16": bfloat16 autocast for the forward pass (weights, optimizer state and loss stay float32); on the
  CPU the model and batches also go channels_last, the layout oneDNN's bfloat16 convolutions want.
- "auto": "bf16" on a CPU that runs bfloat16 natively (AVX-512 BF16 or AMX, detected at run time:
  `robust_glo.utils.cpu_bf16_support`), "fp32" on any other CPU (emulated bfloat16 is several times
  slower there); on CUDA what `amp` says, as before.

The precision is part of a run's identity: it changes the weights. `TrainConfig.resolved()` turns "auto"
into the concrete precision before any key is computed, so a stored run is reused only by a request that
resolves to the precision it was trained in (an "auto" run made on a CPU without bfloat16 is fp32, and is
found again by an "auto" request there, not on a CPU with bfloat16, where "auto" means bf16).

Only training runs in bfloat16. Evaluation, attacks and diagnostics always run the model in float32: an
attack computed at lower precision than the model it judges is weaker, and would overstate robustness.
"""

from __future__ import annotations

import torch

from robust_glo.errors import ConfigError
from robust_glo.utils.device import native_cpu_bf16, resolve_device

PRECISIONS = ("fp32", "bf16", "auto")
CONCRETE_PRECISIONS = ("fp32", "bf16")
# A config.json written before `precision` existed: without `amp` it trained in float32 on every device;
# with `amp` it was bfloat16 on CUDA and float32 on the CPU, which the record does not say, so such a run
# matches no request and is redone rather than reused in the wrong precision.
UNRECORDED = "unrecorded"


def check_precision(precision: object) -> str:
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return str(precision)


def resolve_precision(precision: str, device: str | torch.device | None = "auto", *, amp: bool = False) -> str:
    """The concrete precision ("fp32" or "bf16") a run of `precision` trains in on `device` (see the module
    docstring). The device is resolved only when the answer depends on it ("auto", or `amp`)."""
    check_precision(precision)
    if precision == "bf16":
        return "bf16"
    if precision == "fp32" and not amp:
        return "fp32"
    if resolve_device(device).type == "cuda":
        return "bf16" if amp else "fp32"  # "auto" on CUDA keeps the older behaviour: amp decides
    return "bf16" if precision == "auto" and native_cpu_bf16() else "fp32"


def legacy_precision(flat: dict) -> str:
    """The precision of a stored flat training config that has no `precision` key (see UNRECORDED)."""
    return UNRECORDED if flat.get("amp") else "fp32"


def fit_precision_options(precision: str) -> dict[str, bool]:
    """`fit` / `train_population` keyword arguments of a concrete precision: bfloat16 autocast on CUDA
    (`amp`) and on the CPU (`bf16_cpu`; each acts only on its own kind of device)."""
    if precision not in CONCRETE_PRECISIONS:
        raise ConfigError(f"precision {precision!r} is not resolved; call TrainConfig.resolved() first")
    bf16 = precision == "bf16"
    return {"amp": bf16, "bf16_cpu": bf16}
