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
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True, drop_last=True,
                                       num_workers=workers, generator=torch.Generator().manual_seed(0),
                                       persistent_workers=workers > 0)


def train_steps(batches, model, steps: int, device, warmup: int = 5) -> float:
    """Run `steps` SGD steps (after `warmup`) and return samples/s."""
    loss_fn = get_loss("ce")
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    it = iter(batches)
    seen = 0
    t0 = 0.0
    for i in range(steps + warmup):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        try:
            x, y = next(it)
        except StopIteration:
            it = iter(batches)
            x, y = next(it)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
        if i >= warmup:
            seen += len(y)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - t0)


def loading_only(batches, steps: int) -> float:
    it = iter(batches)
    t0 = time.perf_counter()
    seen = 0
    for _ in range(steps):
        x, y = next(it)
        seen += len(y)
    return seen / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="small-cnn")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers for the plain pipeline")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    device = resolve_device(args.device)
    splits = load_dataset("fashion-mnist", val_size=0)
    with tempfile.TemporaryDirectory() as tmp:
        plain = plain_loader(Path(tmp), args.batch_size, args.workers)
        ours = TensorLoader(splits.train, batch_size=args.batch_size, seed=0, device=device)
        ours_batches = ours.iterate(10**9)
        results = {}
        for name, batches in (("plain", plain), ("tensor-resident", ours_batches)):
            model = create_model(args.model, splits.info, seed=0).to(device)
            results[name] = train_steps(batches, model, args.steps, device)
        load_plain = loading_only(plain, args.steps)
        load_ours = loading_only(ours.iterate(10**9), args.steps)
    print(f"device={device} model={args.model} batch={args.batch_size} steps={args.steps} "
          f"threads={torch.get_num_threads()} plain workers={args.workers}")
    print(f"training  plain DataLoader+ToTensor: {results['plain']:9.0f} samples/s")
    print(f"training  tensor-resident:           {results['tensor-resident']:9.0f} samples/s")
    print(f"training  ratio (ours / plain):      {results['tensor-resident'] / results['plain']:9.2f}x")
    print(f"loading only  plain: {load_plain:9.0f} samples/s, ours: {load_ours:9.0f} samples/s, "
          f"ratio {load_ours / load_plain:.1f}x")


if __name__ == "__main__":
    main()
