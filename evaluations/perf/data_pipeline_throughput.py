"""Training throughput: robust-glo's tensor-resident batches vs a plain torchvision DataLoader + ToTensor.

Both pipelines train the same model (same init) with the same loss and optimizer for the same number of
steps on Fashion-MNIST, in one process; the ratio of samples/s is printed. The plain pipeline is
torchvision's own FashionMNIST dataset (PIL image per sample, `ToTensor`) in a `DataLoader`.

    .venv/bin/python evaluations/perf/data_pipeline_throughput.py --model small-cnn --steps 200
    .venv/bin/python evaluations/perf/data_pipeline_throughput.py --model mlp --steps 400
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import tempfile
import time
from pathlib import Path

import torch

from robust_glo.data import TensorLoader, load_dataset
from robust_glo.data.sources import DEBIAN_FASHION_MNIST, FASHION_FILES
from robust_glo.losses import get_loss
from robust_glo.models import create_model
from robust_glo.utils import resolve_device


def plain_loader(root: Path, batch_size: int, workers: int):
    import torchvision
    from torchvision.transforms import ToTensor

    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for stem in FASHION_FILES.values():
        with gzip.open(DEBIAN_FASHION_MNIST / f"{stem}.gz") as src, open(raw / stem, "wb") as dst:
            shutil.copyfileobj(src, dst)
    ds = torchvision.datasets.FashionMNIST(str(root), train=True, transform=ToTensor(), download=False)
    return torch.utils.data.DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        generator=torch.Generator().manual_seed(0),
        persistent_workers=workers > 0,
    )


class Trainer:
    """One model + optimizer fed by one batch source; `run(k)` times k SGD steps."""

    def __init__(self, batches, model, device):
        self.batches, self.model, self.device = batches, model, device
        self.it = iter(batches)
        self.loss_fn = get_loss("ce")
        self.opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

    def _next(self):
        try:
            return next(self.it)
        except StopIteration:
            self.it = iter(self.batches)
            return next(self.it)

    def run(self, steps: int, train: bool = True) -> tuple[int, float]:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        seen = 0
        for _ in range(steps):
            x, y = self._next()
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            if train:
                self.opt.zero_grad(set_to_none=True)
                self.loss_fn(self.model(x), y).backward()
                self.opt.step()
            seen += len(y)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return seen, time.perf_counter() - t0


def interleaved(trainers: dict[str, Trainer], steps: int, rounds: int, train: bool) -> dict[str, float]:
    """samples/s of each trainer, timed in alternating rounds so machine load hits both alike."""
    for t in trainers.values():
        t.run(3, train)  # warm-up
    totals = {name: [0, 0.0] for name in trainers}
    for _ in range(rounds):
        for name, t in trainers.items():
            n, sec = t.run(max(1, steps // rounds), train)
            totals[name][0] += n
            totals[name][1] += sec
    return {name: n / sec for name, (n, sec) in totals.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="small-cnn")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=10, help="alternating timing rounds")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers for the plain pipeline")
    ap.add_argument("--device", default="auto")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads for both pipelines (1 avoids spin-waiting on a busy machine)",
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    splits = load_dataset("fashion-mnist", val_size=0)
    with tempfile.TemporaryDirectory() as tmp:
        plain = plain_loader(Path(tmp), args.batch_size, args.workers)
        ours = TensorLoader(splits.train, batch_size=args.batch_size, seed=0, device=device).iterate(10**9)

        def trainers() -> dict[str, Trainer]:
            return {
                "plain": Trainer(plain, create_model(args.model, splits.info, seed=0).to(device), device),
                "ours": Trainer(ours, create_model(args.model, splits.info, seed=0).to(device), device),
            }

        train = interleaved(trainers(), args.steps, args.rounds, train=True)
        load = interleaved(trainers(), args.steps, args.rounds, train=False)
    print(
        f"device={device} model={args.model} batch={args.batch_size} steps={args.steps} "
        f"threads={torch.get_num_threads()} plain workers={args.workers}"
    )
    print(f"training  plain DataLoader+ToTensor: {train['plain']:9.0f} samples/s")
    print(f"training  tensor-resident:           {train['ours']:9.0f} samples/s")
    print(f"training  ratio (ours / plain):      {train['ours'] / train['plain']:9.2f}x")
    print(
        f"loading only  plain: {load['plain']:9.0f} samples/s, ours: {load['ours']:9.0f} samples/s, "
        f"ratio {load['ours'] / load['plain']:.1f}x"
    )


if __name__ == "__main__":
    main()
