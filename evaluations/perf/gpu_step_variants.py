"""Lever 3 of time-to-verdict, measured: can the population's training step escape the launch bound?

One SGD training step (forward, loss, backward, update) of small-cnn on a batch of 128 Fashion-MNIST-shaped
images, timed in one run for:

- `sequential eager`: one network, the plain module, cross-entropy, SGD (what `fit` does per step);
- `sequential graph`: the same step captured whole in one CUDA graph and replayed;
- `population eager`: P members as the population engine runs them (`torch.func.vmap` over
  `functional_call`, stacked parameters, each member its own TaylorGLO theta and its own batch);
- `population compile`: the same with the forward and loss under `torch.compile` (default mode);
- `population graph`: the population step captured whole in one CUDA graph (forward, backward, update);
- `population graph bf16`: the same under bfloat16 autocast.

Printed: samples/s over all members and the ratio against `sequential eager` (the reference of the
population goal, 10x at P = 28) and against `sequential graph` (the fair ratio once both sides are graphed).
A variant that fails is printed with its error, not hidden. Learning-rate schedules are left out (a
graphed step needs the learning rate as a device tensor); the step's arithmetic is otherwise the engine's.

    python evaluations/perf/gpu_step_variants.py              # CUDA: P = 1, 8, 28, 64
    python evaluations/perf/gpu_step_variants.py --smoke      # any machine: tiny, eager variants only

Writes --json (default runs/perf/gpu_step_variants.json).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import functional_call, vmap

from robust_glo.data.registry import DATASETS
from robust_glo.models import create_model
from robust_glo.training.population import population_loss
from robust_glo.utils import run_metadata

THETA = [0.3, 0.6, -2.5, 1.2, -0.2, 3.0, 1.0, -0.3]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(step, steps: int, warmup: int, device: torch.device) -> float:
    """Seconds per call of `step()` after `warmup` calls."""
    for _ in range(warmup):
        step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return (time.perf_counter() - t0) / steps


def _graphed(step, device: torch.device, warmup: int = 3):
    """`step` captured whole in one CUDA graph (PyTorch's whole-network capture recipe): warm up on a side
    stream, capture, return the replay."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(warmup):
            step()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay


def sequential_step(info, batch: int, device: torch.device):
    model = create_model("small-cnn", info, seed=0).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True)
    x = torch.rand(batch, *info.image_shape, device=device)
    y = torch.randint(0, info.num_classes, (batch,), device=device)

    def step():
        opt.zero_grad(set_to_none=False)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def population_step(info, p: int, batch: int, device: torch.device, *, compiled: bool = False, amp: bool = False):
    models = [create_model("small-cnn", info, seed=s) for s in range(p)]
    base = copy.deepcopy(models[0]).to(device).train()
    names = [n for n, _ in base.named_parameters()]
    params = {
        n: torch.stack([dict(m.named_parameters())[n].detach() for m in models]).to(device).requires_grad_(True)
        for n in names
    }
    buffers = {n: torch.stack([dict(m.named_buffers())[n] for m in models]).to(device) for n, _ in base.named_buffers()}
    thetas = torch.tensor([THETA] * p, device=device)
    opt = torch.optim.SGD(list(params.values()), lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True)
    x = torch.rand(p, batch, *info.image_shape, device=device)
    y = torch.randint(0, info.num_classes, (p, batch), device=device)

    def one(params, buffers, inputs):
        return functional_call(base, (params, buffers), (inputs,))

    def forward_loss(params, buffers, x, y):
        logits = vmap(one, in_dims=(0, 0, 0), randomness="error")(params, buffers, x)
        return population_loss(thetas, logits, y).sum()

    fl = torch.compile(forward_loss) if compiled else forward_loss
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp)

    def step():
        opt.zero_grad(set_to_none=False)
        with autocast:
            loss = fl(params, buffers, x, y)
        loss.backward()
        opt.step()

    return step


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--sizes", default=None, help="population sizes (default 1,8,28,64; smoke 1,2)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=None, help="timed steps per variant (default 200; smoke 2)")
    ap.add_argument("--json", default="runs/perf/gpu_step_variants.json")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    sizes = [int(s) for s in (args.sizes or ("1,2" if args.smoke else "1,8,28,64")).split(",")]
    steps = args.steps or (2 if args.smoke else 200)
    warmup = 1 if args.smoke else 10
    info = DATASETS["fashion-mnist"]
    hardware = torch.cuda.get_device_name(device) if cuda else "cpu"
    out: dict = {"device": hardware, "batch": args.batch, "steps": steps, "rows": [], "meta": run_metadata()}
    print(f"small-cnn training step, batch {args.batch}, {steps} timed steps, on {hardware}", flush=True)

    def record(name: str, p: int, make, graph: bool) -> float | None:
        try:
            step = make()
            if graph:
                step = _graphed(step, device)
            seconds = _timed(step, steps, warmup, device)
        except Exception as exc:  # noqa: BLE001 (a variant that fails is reported with its error)
            print(f"{name:24s} P={p:3d}: failed ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})", flush=True)
            out["rows"].append({"variant": name, "P": p, "error": f"{type(exc).__name__}: {exc}"[:400]})
            return None
        rate = p * args.batch / seconds
        out["rows"].append({"variant": name, "P": p, "ms_per_step": 1000 * seconds, "samples_per_s": rate})
        return rate

    seq = record("sequential eager", 1, lambda: sequential_step(info, args.batch, device), False)
    seq_graph = record("sequential graph", 1, lambda: sequential_step(info, args.batch, device), True) if cuda else None
    print(f"sequential eager: {seq:,.0f} samples/s" + (f"; graphed {seq_graph:,.0f}" if seq_graph else ""), flush=True)
    variants = [("population eager", False, False, False)]
    if cuda:
        variants += [
            ("population compile", True, False, False),
            ("population graph", False, False, True),
            ("population graph bf16", False, True, True),
        ]
    for p in sizes:
        for name, compiled, amp, graph in variants:
            make = lambda p=p, c=compiled, a=amp: population_step(info, p, args.batch, device, compiled=c, amp=a)  # noqa: E731
            rate = record(name, p, make, graph)
            if rate is None:
                continue
            ratios = f"{rate / seq:6.2f}x eager sequential" + (
                f", {rate / seq_graph:5.2f}x graphed" if seq_graph else ""
            )
            out["rows"][-1] |= {
                "ratio_vs_sequential": rate / seq,
                "ratio_vs_sequential_graph": rate / seq_graph if seq_graph else None,
            }
            print(f"{name:24s} P={p:3d}: {rate:11,.0f} samples/s; {ratios}", flush=True)
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(out, indent=1, default=str))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
