"""The training loop: SGD with momentum on tensor-resident batches, divergence-aware and resumable."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from robust_glo.data.loader import TensorLoader, iterate_eval
from robust_glo.data.splits import Split
from robust_glo.errors import NonFiniteLossError, ResumeError
from robust_glo.losses.user import UserLoss
from robust_glo.models import runs_channels_last, supports_channels_last
from robust_glo.training.recipe import Recipe

_DEFAULT = Recipe()  # the keyword defaults below are the recipe's, written once (training/recipe.py)


@dataclass
class FitResult:
    status: str  # "ok" or "diverged"
    steps_done: int
    loss_curve: list[tuple[int, float]] = field(default_factory=list)  # (step, mean loss over the window)
    seconds: float = 0.0
    samples_per_second: float = 0.0
    message: str = ""
    start_step: int = 0  # the step a checkpoint resumed from (0 when trained from the start)
    layout: str = "contiguous"  # the memory layout the convolutions trained in: "channels_last" or "contiguous"


def make_optimizer(
    model: nn.Module, *, lr: float, momentum: float, weight_decay: float, nesterov: bool = False
) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov and momentum > 0
    )


def make_scheduler(
    optimizer: torch.optim.Optimizer, *, schedule: str, steps: int, milestones: tuple[int, ...] = (), gamma: float = 0.1
):
    """Per-step learning-rate schedule: constant, step (x gamma at each milestone) or cosine to 0."""
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    if schedule == "step":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(milestones), gamma=gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


def _weights_finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _nonfinite_gradient(model: nn.Module) -> str | None:
    """ "nan" or "inf" when a parameter's gradient holds one (NaN first), None when every gradient is finite."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads or bool(torch.stack([torch.isfinite(g).all() for g in grads]).all()):
        return None
    return "nan" if any(bool(torch.isnan(g).any()) for g in grads) else "inf"


def gradient_message(step: int, value: float | None = None, kind: str | None = None) -> str:
    """The divergence message of a loss whose value is finite and whose gradient is not."""
    shown = f" ({value:.4g})" if value is not None else ""
    what = f" ({kind})" if kind else ""
    return (
        f"non-finite gradient at step {step}: the loss value{shown} is finite but its gradient is not{what}; "
        "the weights were not updated"
    )


def weights_message(step: int, last_checked: int | None) -> str:
    """The divergence message of weights that an update made non-finite (the loss before it was finite)."""
    if last_checked is not None and last_checked == step - 1:
        return (
            f"non-finite weights at step {step}: the update of step {step - 1} made them so, although its loss "
            "value and gradient were finite (the update overflowed; a smaller lr may help)"
        )
    return f"non-finite weights at step {step}: an update before it made them so"


def fit(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    train: Split,
    *,
    steps: int,
    batch_size: int = _DEFAULT.batch_size,
    lr: float = _DEFAULT.lr,
    momentum: float = _DEFAULT.momentum,
    weight_decay: float = _DEFAULT.weight_decay,
    nesterov: bool = _DEFAULT.nesterov,
    schedule: str = _DEFAULT.schedule,
    milestones: tuple[int, ...] = (),
    gamma: float = _DEFAULT.gamma,
    seed: int = 0,
    device: torch.device | str = "cpu",
    augment: bool = False,
    amp: bool = False,
    bf16_cpu: bool = False,
    progress: bool | str = False,
    checkpoint_path: str | Path | None = None,
    checkpoint_every: int = 0,
    log_every: int = 50,
    stop_at: int | None = None,
) -> FitResult:
    """Train `model` in place for `steps` SGD steps on `train`; returns status and loss curve.

    Weights init is the caller's; batch order, augmentation and dropout come from `seed` alone (the global
    torch RNG is forked, so it is left untouched). With `checkpoint_path`, the state is saved every
    `checkpoint_every` steps and an existing checkpoint there is resumed from, giving the same final
    weights as an uninterrupted run on the CPU. `stop_at` (< steps) trains only that far on the schedule of
    `steps` and saves the checkpoint there (a successive-halving rung): a later call with a larger
    `stop_at` (or none) continues from it exactly. `amp` trains under bfloat16 autocast on CUDA;
    `bf16_cpu` does so on the CPU, with the model and batches in channels_last layout during training
    (faster where the CPU has bfloat16 instructions, much slower where it has not:
    evaluations/perf/cpu_bf16.py; `TrainConfig.precision` chooses). The weights stay float32 throughout.
    A float32 run trains in channels_last layout too where `models.runs_channels_last` says so (a
    registered architecture on a CPU where `utils.device.cpu_layout` chooses it); the model is returned in
    the usual contiguous layout either way.
    """
    device = torch.device(device)
    model.to(device)
    loader = TensorLoader(train, batch_size=batch_size, seed=seed, device=device, augment=augment)
    optimizer = make_optimizer(model, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    scheduler = make_scheduler(optimizer, schedule=schedule, steps=steps, milestones=milestones, gamma=gamma)
    ckpt = Path(checkpoint_path) if checkpoint_path else None
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    curve: list[tuple[int, float]] = []
    start_step = 0
    end = steps if stop_at is None else min(int(stop_at), steps)
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(seed)
        if ckpt is not None and ckpt.is_file():
            start_step, curve = _restore_checkpoint(ckpt, model, optimizer, scheduler, device)
        model.train()
        bar = tqdm(
            total=steps,
            initial=start_step,
            desc=progress if isinstance(progress, str) else "train",
            disable=not progress,
            leave=False,
            dynamic_ncols=True,
        )
        t0 = time.perf_counter()
        cpu_bf16 = bf16_cpu and device.type == "cpu"
        # bfloat16 always, float32 where this CPU's oneDNN kernels are faster in it; registered architectures
        # only (a caller's model may flatten with .view, which channels_last refuses)
        channels_last = (cpu_bf16 and supports_channels_last(model)) or runs_channels_last(model, device)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        try:
            loop = _Loop(
                model,
                loss_fn,
                optimizer,
                scheduler,
                device,
                amp,
                log_every,
                bar,
                curve,
                cpu_bf16=cpu_bf16,
                channels_last=channels_last,
            )
            step, status, message = loop.run(loader, steps, start_step, ckpt, checkpoint_every, end=end)
            if ckpt is not None and status == "ok" and step < steps and step > start_step:
                _save_checkpoint(ckpt, model, optimizer, scheduler, step, curve)
        finally:
            if channels_last:  # back to the usual layout, also when the loss raised: the model is as any other
                model.to(memory_format=torch.contiguous_format)
        bar.close()
        seconds = time.perf_counter() - t0
    if status == "ok" and not _weights_finite(model):
        status, message = "diverged", "non-finite weights at the end of training"
    done = step - start_step
    return FitResult(
        status=status,
        steps_done=step,
        loss_curve=curve,
        seconds=seconds,
        samples_per_second=done * loader.batch_size / seconds if seconds > 0 else 0.0,
        message=message,
        start_step=start_step,
        layout="channels_last" if channels_last else "contiguous",
    )


class _Loop:
    """The SGD steps of `fit`: forward (under autocast), loss, divergence checks, update, loss curve."""

    def __init__(
        self,
        model,
        loss_fn,
        optimizer,
        scheduler,
        device: torch.device,
        amp: bool,
        log_every: int,
        bar,
        curve: list[tuple[int, float]],
        *,
        cpu_bf16: bool = False,
        channels_last: bool = False,
    ):
        self.model, self.loss_fn, self.optimizer, self.scheduler = model, loss_fn, optimizer, scheduler
        if amp and device.type == "cuda":
            self.autocast = torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        elif cpu_bf16:
            self.autocast = torch.autocast(device_type="cpu", dtype=torch.bfloat16)
        else:
            self.autocast = nullcontext()
        self.channels_last = channels_last
        # Checking the loss every step costs a device sync; on CUDA check every few steps instead.
        self.check_every = 1 if device.type == "cpu" else 10
        self.log_every, self.bar, self.curve = log_every, bar, curve
        self.window = torch.zeros((), device=device)
        self.window_n = 0
        self.last_checked: int | None = None  # the last step whose loss value and gradient were checked finite

    def _why(self, step: int, what: str) -> str:
        """A non-finite loss explained: the weights an update made non-finite, or the value itself."""
        if _weights_finite(self.model):
            return f"{what}, on finite weights"
        return f"{weights_message(step, self.last_checked)}; then {what}"

    def run(
        self,
        loader: TensorLoader,
        steps: int,
        start_step: int,
        ckpt: Path | None,
        checkpoint_every: int,
        *,
        end: int | None = None,
    ) -> tuple[int, str, str]:
        """Steps `start_step` .. `end` (default `steps`) of a `steps`-long schedule; returns (the step
        reached, status, message)."""
        step = start_step
        end = steps if end is None else end
        for x, y in loader.iterate(end, start_step=start_step):
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with self.autocast:
                logits = self.model(x)
            if logits.dtype != torch.float32:  # losses in float32, whatever the forward pass ran in
                logits = logits.float()
            try:
                loss = self.loss_fn(logits, y)
            except NonFiniteLossError as exc:
                if step == 0:  # non-finite on fresh weights: the loss itself is broken
                    raise
                return step, "diverged", self._why(step, f"{exc} at step {step}")
            check = (step - start_step) % self.check_every == 0
            if check and not math.isfinite(float(loss.detach())):
                return step, "diverged", self._why(step, f"non-finite training loss at step {step}")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if check:  # a finite value with a non-finite gradient would make the weights NaN: say so, now
                kind = _nonfinite_gradient(self.model)
                if kind is not None:
                    value = float(loss.detach())
                    if step == 0 and isinstance(self.loss_fn, UserLoss):  # on fresh weights: the loss is broken
                        raise NonFiniteLossError(
                            f"user loss {self.loss_fn.spec!r} returned a finite value ({value:.4g}) whose gradient "
                            f"is non-finite ({kind}) on fresh weights"
                        )
                    return step, "diverged", gradient_message(step, value, kind)
                self.last_checked = step
            self.optimizer.step()
            self.scheduler.step()
            self.window += loss.detach().float()
            self.window_n += 1
            step += 1
            if step % self.log_every == 0 or step == end:
                mean = float(self.window) / self.window_n
                self.curve.append((step, mean))
                self.window.zero_()
                self.window_n = 0
                self.bar.set_postfix(loss=f"{mean:.4f}")
                if not math.isfinite(mean):
                    return step, "diverged", self._why(step, f"non-finite training loss before step {step}")
            self.bar.update(1)
            if ckpt is not None and checkpoint_every and step % checkpoint_every == 0 and step < steps:
                _save_checkpoint(ckpt, self.model, self.optimizer, self.scheduler, step, self.curve)
        return step, "ok", ""


def _restore_checkpoint(
    path: Path, model: nn.Module, optimizer, scheduler, device: torch.device
) -> tuple[int, list[tuple[int, float]]]:
    """Load a checkpoint of `_save_checkpoint` into the objects (and the forked RNG); returns the step it was
    taken at and the loss curve so far. An unreadable or mismatched checkpoint is a `ResumeError`."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        return int(state["step"]), [tuple(x) for x in state["curve"].tolist()]
    except (RuntimeError, KeyError, ValueError, EOFError, OSError) as exc:
        raise ResumeError(
            f"cannot resume from checkpoint {str(path)!r} ({type(exc).__name__}); delete it to train from the start"
        ) from None


def _save_checkpoint(
    path: Path, model: nn.Module, optimizer, scheduler, step: int, curve: list[tuple[int, float]]
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": torch.get_rng_state(),
            "step": step,
            "curve": torch.tensor(curve, dtype=torch.float64).reshape(-1, 2),
        },
        tmp,
    )
    tmp.replace(path)


@torch.no_grad()
def evaluate_accuracy(
    model: nn.Module, split: Split, *, batch_size: int = 1000, device: torch.device | str = "cpu"
) -> float:
    """Top-1 accuracy of `model` on a split, in eval mode (the model's mode is restored)."""
    was_training = model.training
    model.eval()
    correct = 0
    for x, y in iterate_eval(split, batch_size, device):
        correct += int((model(x).argmax(dim=1) == y).sum())
    model.train(was_training)
    return correct / max(1, len(split))
