"""Per-image outcomes: which test images each network still classified correctly under each attack.

The accuracy tables keep one number per (network, attack, eps); the statistics need the images behind
it (to bootstrap over images and to pair networks that saw the same images). One row per
(loss, seed, attack, eps) holds the outcome of every image as a bit string:

    loss, seed, dataset, model, attack, eps, n, correct, images, bits

`bits` is the hex of `numpy.packbits` over the n booleans (image i = bit i, in the order the images were
attacked); `images` is a fingerprint of those images and labels, so that only outcomes on the very same
images are paired. `unpack_bits(bits, n)` gives the booleans back.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import torch

OUTCOME_COLUMNS = ["attack", "eps", "n", "correct", "images", "bits"]


def pack_bits(correct: torch.Tensor | np.ndarray) -> str:
    """bool `(n,)` -> hex string of `ceil(n / 8)` bytes."""
    array = correct.cpu().numpy() if isinstance(correct, torch.Tensor) else np.asarray(correct)
    return np.packbits(array.astype(bool)).tobytes().hex()


def unpack_bits(bits: str, n: int) -> np.ndarray:
    """Hex string from `pack_bits` -> bool `(n,)`."""
    return np.unpackbits(np.frombuffer(bytes.fromhex(bits), dtype=np.uint8), count=int(n)).astype(bool)


def image_fingerprint(inputs: torch.Tensor, labels: torch.Tensor) -> str:
    """A short hash of the attacked images `(N, ...)` and labels `(N,)`, order included."""
    digest = hashlib.sha1()
    digest.update(inputs.detach().cpu().contiguous().to(torch.float32).numpy().tobytes())
    digest.update(labels.detach().cpu().to(torch.int64).numpy().tobytes())
    return digest.hexdigest()[:16]


def outcome_rows(robust: dict[str, dict[float, torch.Tensor]], clean: torch.Tensor, images: str) -> pd.DataFrame:
    """Rows (`OUTCOME_COLUMNS`) for one evaluation: "clean", every attack at every eps, and "worst"."""
    rows = [
        {
            "attack": "clean",
            "eps": 0.0,
            "n": len(clean),
            "correct": int(clean.sum()),
            "images": images,
            "bits": pack_bits(clean),
        }
    ]
    order = [a for a in robust if a != "worst"] + (["worst"] if "worst" in robust else [])
    for attack in order:
        for eps in sorted(robust[attack]):
            held = robust[attack][eps]
            rows.append(
                {
                    "attack": attack,
                    "eps": float(eps),
                    "n": len(held),
                    "correct": int(held.sum()),
                    "images": images,
                    "bits": pack_bits(held),
                }
            )
    return pd.DataFrame(rows, columns=OUTCOME_COLUMNS)
