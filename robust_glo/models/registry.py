"""A timm-style model registry: `@register_model("name")` and `create_model(name, info, seed=...)`."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from robust_glo.data.registry import DatasetInfo
from robust_glo.errors import ModelError
from robust_glo.utils.device import channels_last_on

ModelFactory = Callable[[DatasetInfo], nn.Module]
_MODELS: dict[str, tuple[ModelFactory, str]] = {}


def register_model(name: str, summary: str = ""):
    def decorator(factory: ModelFactory) -> ModelFactory:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        doc_lines = (factory.__doc__ or "").strip().splitlines()
        _MODELS[name] = (factory, summary or (doc_lines[0] if doc_lines else name))
        return factory

    return decorator


def list_models() -> dict[str, str]:
    """Model name -> one-line summary."""
    return {name: summary for name, (_, summary) in _MODELS.items()}


class Normalize(nn.Module):
    """First layer of every model: `(x - mean) / std` per channel, so attacks see inputs in [0, 1]."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class NormalizedModel(nn.Sequential):
    """`Normalize` followed by the network; returns logits `(N, num_classes)`."""

    # Every registered architecture flattens with reshape-safe ops (nn.Flatten, .flatten), so it runs in the
    # channels_last layout too (utils.device.cpu_layout); a model built elsewhere keeps its own layout.
    channels_last_safe = True

    def __init__(self, info: DatasetInfo, net: nn.Module):
        super().__init__()
        self.normalize = Normalize(info.mean, info.std)
        self.net = net


def check_model_fits(name: str, info: DatasetInfo) -> None:
    """Raise `ModelError` (one line) when model `name` is unknown or cannot take `info`'s images, without
    allocating its weights (it is built on PyTorch's meta device), so that a command can refuse a bad pair
    before it writes anything."""
    with torch.device("meta"):
        _factory(name)(info)


def _factory(name: str):
    if name not in _MODELS:
        raise ModelError(f"unknown model {name!r}; valid: {', '.join(_MODELS)}")
    return _MODELS[name][0]


def create_model(name: str, info: DatasetInfo, *, seed: int = 0) -> nn.Module:
    """Build model `name` for a dataset, with weights initialised from `seed` (the global RNG is untouched)."""
    factory = _factory(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = factory(info)
    return NormalizedModel(info, net)


def supports_channels_last(model: nn.Module) -> bool:
    """Whether `model` may be switched to the channels_last layout: one of the registered architectures
    (`create_model`; a model the caller built may flatten with `.view`, which channels_last activations
    refuse), whose floating tensors are at most 4-D (channels_last is defined for 4-D tensors only)."""
    if not getattr(model, "channels_last_safe", False):
        return False
    return all(t.dim() <= 4 for t in [*model.parameters(), *model.buffers()])


def runs_channels_last(model: nn.Module, device: str | torch.device) -> bool:
    """Whether `model` on `device` runs its convolutions channels_last: a registered architecture
    (`supports_channels_last`) of float32 parameters on a CPU where `utils.device.cpu_layout` says so. The
    one rule that training (`fit`), the attacks (`prepared_model`) and the population engine's copies follow."""
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    return supports_channels_last(model) and channels_last_on(device, dtype)
