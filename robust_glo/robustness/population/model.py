"""P networks of one architecture as one model: stacked parameters, one forward over `(P, B, ...)` inputs.

The same idea as the population training engine (`robust_glo.training.population`): every member's
parameters and buffers are stacked along a new leading dimension `(P, *shape)` and
`torch.func.functional_call` runs the architecture once with each member's tensors. Two ways to run it:

- "vmap": `torch.func.vmap(functional_call)` over the members, one batched computation (P convolutions
  become one grouped convolution): what pays on a GPU, where small models are launch-bound;
- "loop": each member's own copy of its module, one after another, then stacked: on a CPU, which is
  compute-bound, batching buys nothing, and each member then runs the very kernels a per-network run
  runs; told which rows of a padded batch are real (`counts`), it computes only those.

"auto" picks "vmap" on CUDA and "loop" elsewhere. Members are evaluated in eval mode (locked: `train()`
is ignored), their parameters never require gradients, and the models handed in are not modified.

`pack` / `unpack` move between a population batch `(P, B, ...)` and per-member row subsets of different
sizes: each member's chosen rows go, in order, to the front of a padded batch `(P, W, ...)` (W the largest
subset), the remaining slots repeat a real input so that every slot stays a valid image.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, vmap

from robust_glo.errors import ConfigError
from robust_glo.models import runs_channels_last

FORWARD_MODES = ("auto", "vmap", "loop")


class PopulationModel(nn.Module):
    """P networks of one architecture attacked as one model.

    `models`: P >= 1 modules of one class whose state_dicts have the same names, shapes and dtypes (the
    seeds of one loss, or several losses, of one architecture). `device`: where the stacked tensors live
    (default: that of the first model's first parameter or buffer). `mode`: "vmap", "loop" or "auto" (see
    the module docstring).

    `forward(x)`: inputs `(P, B, C, H, W)`, member p's batch at `x[p]`, -> logits `(P, B, K)`.
    Raises `ConfigError` for an empty list, members of different architectures or dtypes, or an unknown
    mode.
    """

    def __init__(self, models: Sequence[nn.Module], device: torch.device | str | None = None, *, mode: str = "auto"):
        super().__init__()
        models = list(models)
        if not models:
            raise ConfigError("a population of networks needs at least one model")
        if mode not in FORWARD_MODES:
            raise ConfigError(f"forward mode {mode!r} is not valid; valid: {', '.join(FORWARD_MODES)}")
        first = models[0]
        if device is None:
            device = next((t.device for t in [*first.parameters(), *first.buffers()]), torch.device("cpu"))
        device = torch.device(device)
        shapes = _signature(first)
        for j, m in enumerate(models[1:], start=1):
            if type(m) is not type(first) or _signature(m) != shapes:
                raise ConfigError(
                    f"every member of a population must have one architecture: member {j} "
                    f"({type(m).__name__}) differs from member 0 ({type(first).__name__}) in its class or in the "
                    "names, shapes or dtypes of its parameters and buffers"
                )
        kinds = {dtype for _, _, dtype in shapes.values() if dtype.is_floating_point}
        if len(kinds) > 1:
            raise ConfigError("the members' parameters and buffers mix floating-point dtypes; give them one dtype")
        # A copy of the architecture that `functional_call` runs with each member's tensors (eval mode).
        self.base = copy.deepcopy(first).to(device).eval()
        for t in self.base.parameters():
            t.requires_grad_(False)
        names = [n for n, _ in first.named_parameters()]
        buffer_names = [n for n, _ in first.named_buffers()]
        with torch.no_grad():
            self.stacked_params = {
                n: torch.stack([dict(m.named_parameters())[n].detach() for m in models]).to(device) for n in names
            }
            self.stacked_buffers = {
                n: torch.stack([dict(m.named_buffers())[n].detach() for m in models]).to(device) for n in buffer_names
            }
        self.size = len(models)
        self.device = device
        self.mode = ("vmap" if device.type == "cuda" else "loop") if mode == "auto" else mode
        # "loop" runs each member's own copy: the very module, layout and kernels a per-network run uses
        # (`robustness.evaluate.prepared_model`: channels_last on a CPU where utils.device.cpu_layout says so).
        self.copies = None
        if self.mode == "loop":
            layout = torch.channels_last if runs_channels_last(first, device) else torch.preserve_format
            self.copies = nn.ModuleList(
                [copy.deepcopy(m).to(device).to(memory_format=layout).eval().requires_grad_(False) for m in models]
            )
        self.dtype = next(
            (t.dtype for t in self.stacked_params.values() if t.is_floating_point()), torch.get_default_dtype()
        )
        self.training = False

    def __len__(self) -> int:
        return self.size

    def train(self, mode: bool = True) -> PopulationModel:  # noqa: ARG002 - eval mode is locked on purpose
        self.training = False
        self.base.eval()
        if self.copies is not None:
            self.copies.eval()
        return self

    def member_tensors(self, j: int) -> dict[str, torch.Tensor]:
        """Views of member j's parameters and buffers `{name: tensor}` (no copy)."""
        return {k: v[j] for k, v in {**self.stacked_params, **self.stacked_buffers}.items()}

    def forward(self, x: torch.Tensor, counts: Sequence[int] | None = None) -> torch.Tensor:
        """Logits `(P, B, K)` of inputs `(P, B, C, H, W)`: member p's network on `x[p]`.

        `counts`, when given, says that only member p's first `counts[p]` rows are real (the rest padding,
        see `pack`): the "loop" mode then computes only those and returns zero logits for the padding
        (whose gradient is zero); "vmap" computes every row."""
        if x.dim() < 2 or x.shape[0] != self.size:
            raise ConfigError(f"population inputs must have shape ({self.size}, B, ...), got {tuple(x.shape)}")
        if self.mode == "loop":
            return self._loop(x, counts)
        base = self.base

        def one(params, buffers, inputs):
            return functional_call(base, (params, buffers), (inputs,))

        return vmap(one, in_dims=(0, 0, 0), randomness="error")(self.stacked_params, self.stacked_buffers, x)

    def _loop(self, x: torch.Tensor, counts: Sequence[int] | None) -> torch.Tensor:
        width = x.shape[1]
        counts = [width] * self.size if counts is None else [min(int(c), width) for c in counts]
        outs: list[torch.Tensor | None] = [None] * self.size
        for j, c in enumerate(counts):
            if c:
                outs[j] = self.copies[j](x[j] if c == width else x[j, :c])
        k = next((o.shape[-1] for o in outs if o is not None), None)
        if k is None:  # no member has a real row: nothing to compute
            k = self.copies[0](x[0, :1]).shape[-1]
        like = next((o for o in outs if o is not None), None)
        dtype = like.dtype if like is not None else self.dtype
        parts = []
        for j, c in enumerate(counts):
            out = outs[j]
            if out is None:
                out = torch.zeros((width, k), dtype=dtype, device=x.device)
            elif c < width:
                out = torch.cat([out, out.new_zeros((width - c, k))])
            parts.append(out)
        return torch.stack(parts)

    def predict(self, x: torch.Tensor, counts: Sequence[int] | None = None) -> torch.Tensor:
        """Predicted labels `(P, B)` of inputs `(P, B, C, H, W)`, without a graph (`counts`: see `forward`;
        padding rows then predict class 0)."""
        with torch.no_grad():
            return self(x, counts).argmax(-1)


def _signature(model: nn.Module) -> dict[str, tuple[str, tuple[int, ...], torch.dtype]]:
    return {
        **{n: ("param", tuple(t.shape), t.dtype) for n, t in model.named_parameters()},
        **{n: ("buffer", tuple(t.shape), t.dtype) for n, t in model.named_buffers()},
    }


# ------------------------------------------------------------------------------ ragged population batches


@dataclass
class Packed:
    """Per-member row subsets of a population batch, packed to the front of a padded batch.

    `index` `(P, W)`: for member p, slot i < counts[p] holds row `index[p, i]` of the original batch (in
    increasing order, as `x[rows]` would give them); the slots past counts[p] repeat a real row (padding).
    `counts`: how many rows each member has; `valid` `(P, W)` bool: the real slots.
    """

    index: torch.Tensor
    counts: list[int]
    valid: torch.Tensor

    @property
    def width(self) -> int:
        return int(self.index.shape[1])

    def take(self, t: torch.Tensor) -> torch.Tensor:
        """The packed rows `(P, W, ...)` of a population tensor `t` `(P, B, ...)`."""
        rows = torch.arange(t.shape[0], device=t.device).unsqueeze(1)
        return t[rows, self.index.to(t.device)]

    def put(self, dst: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
        """Write the real slots of `src` `(P, W, ...)` back into their rows of `dst` `(P, B, ...)` (in
        place); returns `dst`."""
        valid = self.valid.to(dst.device)
        members = torch.arange(dst.shape[0], device=dst.device).unsqueeze(1).expand_as(valid)
        dst[members[valid], self.index.to(dst.device)[valid]] = src[valid].to(dst.dtype)
        return dst

    def rows(self, p: int) -> torch.Tensor:
        """Member p's original rows `(counts[p],)`."""
        return self.index[p, : self.counts[p]]


def pack(rows: Sequence[torch.Tensor], device: torch.device | str | None = None) -> Packed:
    """`Packed` for member p's rows `rows[p]` (1-D integer tensors, increasing; may be empty)."""
    counts = [int(len(r)) for r in rows]
    width = max(counts) if counts else 0
    device = torch.device(device) if device is not None else (rows[0].device if rows else torch.device("cpu"))
    index = torch.zeros((len(rows), width), dtype=torch.long, device=device)
    for p, r in enumerate(rows):
        if counts[p]:
            index[p, : counts[p]] = r.to(device)
            index[p, counts[p] :] = r[0].to(device)
    valid = torch.arange(width, device=device).unsqueeze(0) < torch.tensor(counts, device=device).unsqueeze(1)
    return Packed(index, counts, valid)


def full(p: int, n: int | Sequence[int], device: torch.device | str = "cpu") -> Packed:
    """`Packed` of the first n rows of each of p members (n an int, or one count per member)."""
    counts = [int(n)] * p if isinstance(n, int) else [int(c) for c in n]
    return pack([torch.arange(c, device=device) for c in counts], device)
