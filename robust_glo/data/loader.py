"""Tensor-resident batching: whole splits live on the device; batches are index gathers.

No per-sample PIL transforms: augmentation (random crop with zero padding + horizontal flip) is done on
the whole batch with tensor ops, driven by a private `torch.Generator`.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from robust_glo.data.splits import Split


def random_crop_flip(images: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Random crop (after zero padding) and horizontal flip of a batch `(N, C, H, W)`, same shape out."""
    n, c, h, w = images.shape
    gen_device = generator.device
    padded = torch.nn.functional.pad(images, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=gen_device).to(images.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=gen_device).to(images.device)
    flip = (torch.rand(n, generator=generator, device=gen_device) < 0.5).to(images.device)
    rows = (dy[:, None] + torch.arange(h, device=images.device))[:, None, :, None]
    cols = dx[:, None] + torch.arange(w, device=images.device)
    cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :]
    batch_idx = torch.arange(n, device=images.device)[:, None, None, None]
    chan_idx = torch.arange(c, device=images.device)[None, :, None, None]
    return padded[batch_idx, chan_idx, rows, cols]


class TensorLoader:
    """Iterate `(images (B, C, H, W), labels (B,))` batches of a split placed on `device`.

    Batch order comes from a private generator seeded with `seed`, so two loaders with the same seed
    yield the same batches. `steps` batches are produced, reshuffling at each epoch boundary.
    """

    def __init__(
        self,
        split: Split,
        *,
        batch_size: int,
        seed: int,
        device: torch.device | str = "cpu",
        augment: bool = False,
        drop_last: bool = True,
    ):
        self.device = torch.device(device)
        self.images = split.images.to(self.device)
        self.labels = split.labels.to(self.device)
        self.batch_size = min(batch_size, len(split))
        self.augment = augment
        self.drop_last = drop_last
        self.generator = torch.Generator().manual_seed(seed)

    def batches_per_epoch(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def iterate(self, steps: int, start_step: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield batches for steps `start_step .. steps-1`; resuming replays the same order."""
        per_epoch = self.batches_per_epoch()
        step = 0
        while step < steps:
            order = torch.randperm(len(self.labels), generator=self.generator).to(self.device)
            for b in range(per_epoch):
                if step >= steps:
                    return
                if step >= start_step:
                    idx = order[b * self.batch_size : (b + 1) * self.batch_size]
                    x = self.images.index_select(0, idx)
                    if self.augment:
                        x = random_crop_flip(x, self.generator)
                    yield x, self.labels.index_select(0, idx)
                elif self.augment:  # keep the generator stream identical when skipping
                    random_crop_flip(self.images[: self.batch_size], self.generator)
                step += 1


def iterate_eval(
    split: Split, batch_size: int, device: torch.device | str
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Fixed-order batches for evaluation."""
    for i in range(0, len(split), batch_size):
        yield (
            split.images[i : i + batch_size].to(device, non_blocking=True),
            split.labels[i : i + batch_size].to(device, non_blocking=True),
        )
