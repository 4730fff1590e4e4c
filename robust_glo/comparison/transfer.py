"""The transfer diagnostic of a comparison: adversarial examples crafted on the source loss's network of
each seed (the baseline of a benchmark), evaluated on every other network of that seed.

White-box attacks on a network that masks its gradients fail where a black-box attack succeeds: examples
crafted on another, well-behaved network of the same architecture, data and seed then fool it more often
than its own white-box attacks did (Papernot et al. 2017; Athalye et al. 2018; Fu et al. 2020 found this
for label smoothing). The row says so per (loss, seed, norm, eps) through
`robust_glo.robustness.diagnostics.transfer_row`.

The examples are crafted with PGD on cross-entropy (`CRAFT_STEPS` steps of 2.5 ε / steps from a random
start, torchattacks), which maximizes the source's loss on every input, correctly classified or not (APGD
would stop at the first misclassification, which transfers worse). Results are stored per seed under
`transfer/` with the fingerprints of every network's weights, and reused while they match.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from robust_glo.comparison import layout
from robust_glo.comparison.config import CompareConfig
from robust_glo.comparison.store import _read_json, _write_csv, _write_json
from robust_glo.robustness.attacks import WORST, WORST_L2
from robust_glo.robustness.diagnostics import DIAGNOSTIC_COLUMNS, read_diagnostics, transfer_row
from robust_glo.robustness.evaluate import generate_adversarial
from robust_glo.robustness.outcomes import image_fingerprint, unpack_bits
from robust_glo.training import load_trained_model
from robust_glo.utils import resolve_device

CRAFT_STEPS = 40
TRANSFER_VERSION = 3  # 2: per input, against the white-box worst case; 3: and relative to the inputs standing


def _craft_spec(norm: str) -> str:
    return f"pgd:norm=l2:steps={CRAFT_STEPS}" if norm == "l2" else f"pgd:steps={CRAFT_STEPS}"


def _weights(run_dir: Path) -> str | None:
    path = run_dir / "model.pt"
    return hashlib.sha1(path.read_bytes()).hexdigest() if path.is_file() else None


def _budgets(results: pd.DataFrame) -> list[tuple[str, float]]:
    """The (norm, eps > 0) with a worst-case row in `results`."""
    out = []
    for norm, label in (("linf", WORST), ("l2", WORST_L2)):
        rows = results[(results["attack"] == label) & (results["eps"].astype(float) > 0)]
        out += [(norm, float(e)) for e in sorted(rows["eps"].astype(float).unique())]
    return out


def _predict(model: torch.nn.Module, x: torch.Tensor, batch: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(x[i : i + batch]).argmax(1) for i in range(0, len(x), batch)])


def transfer_diagnostics(
    config: CompareConfig, out: Path, attacked: Any, results: pd.DataFrame, outcomes: pd.DataFrame, *, echo=print
) -> pd.DataFrame:
    """Transfer rows (`DIAGNOSTIC_COLUMNS` plus loss and seed) of every network of `config` other than the
    source's, per seed, computed or read back from `out/transfer/`. `attacked` is the attacked test split
    (`.images` `(N, C, H, W)`, `.labels` `(N,)`); `results` and `outcomes` the gathered robustness rows and
    per-image outcomes (the white-box worst case of each network, per input). Seeds whose source network is
    missing (diverged) get no rows."""
    config = config.validated()
    source = config.transfer_from
    settings = config.diagnostic_settings()
    budgets = _budgets(results[results["status"] == "ok"] if "status" in results else results)
    targets = [loss for loss in config.losses if loss != source]
    if not targets or not budgets:
        return pd.DataFrame(columns=["loss", "seed"] + DIAGNOSTIC_COLUMNS)
    device = resolve_device(config.device)
    frames = []
    for seed in config.seeds:
        src_dir = layout.run_dir(out, source, seed)
        key = {
            "version": TRANSFER_VERSION,
            "source": source,
            "source_weights": _weights(src_dir),
            "targets": {t: _weights(layout.run_dir(out, t, seed)) for t in targets},
            "budgets": budgets,
            "craft": [_craft_spec("linf"), _craft_spec("l2")],
            "evaluation": config.evaluation_key(),
        }
        if key["source_weights"] is None:
            continue
        table, meta = layout.transfer_files(out, seed)
        if table.is_file() and meta.is_file():
            try:
                if _read_json(meta) == key:
                    frames.append(read_diagnostics(table))
                    continue
            except (OSError, ValueError):
                pass
        frame = _transfer_seed(
            config, out, attacked, outcomes, seed, source, targets, budgets, settings, device, load_trained_model
        )
        table.parent.mkdir(parents=True, exist_ok=True)
        _write_csv(table, frame)
        _write_json(meta, key)
        echo(f"transfer from {source} seed {seed}: {len(frame)} rows")
        frames.append(frame)
    found = [f for f in frames if len(f)]
    if not found:
        return pd.DataFrame(columns=["loss", "seed"] + DIAGNOSTIC_COLUMNS)
    return pd.concat(found, ignore_index=True)


def _whitebox(outcomes: pd.DataFrame, loss: str, seed: int, label: str, eps: float) -> torch.Tensor | None:
    """The per-input worst case `(N,)` of one network at one budget, from the gathered outcomes."""
    rows = outcomes[
        (outcomes["loss"].astype(str) == str(loss))
        & (outcomes["seed"].astype(int) == int(seed))
        & (outcomes["attack"] == label)
        & (outcomes["eps"].astype(float) == float(eps))
    ]
    if rows.empty:
        return None
    row = rows.iloc[0]
    return torch.from_numpy(unpack_bits(str(row["bits"]), int(row["n"])).copy())


def craft_key(config: CompareConfig, out: Path, seed: int, budgets: list[tuple[str, float]], attacked: Any) -> dict:
    """What the crafted examples of seed `seed` depend on: the source network's weights, the budgets, the
    craft attacks, the attack seed and the attacked images."""
    return {
        "version": TRANSFER_VERSION,
        "source_weights": _weights(layout.run_dir(out, config.transfer_from, seed)),
        "budgets": [[norm, float(eps)] for norm, eps in budgets],
        "craft": [_craft_spec("linf"), _craft_spec("l2")],
        "attack_seed": config.attack_seed,
        "images": image_fingerprint(attacked.images, attacked.labels),
    }


def craft_examples(
    config: CompareConfig, model: torch.nn.Module, attacked: Any, budgets: list[tuple[str, float]], device
) -> dict[tuple[str, float], torch.Tensor]:
    """PGD examples `(N, C, H, W)` crafted on `model` (the source network) at every (norm, eps) of `budgets`."""
    images, labels = attacked.images, attacked.labels.to(torch.int64)
    batch = config.eval_batch_size
    model.eval()
    crafted: dict[tuple[str, float], torch.Tensor] = {}
    for norm, eps in budgets:
        parts = []
        for i in range(0, len(labels), batch):
            parts.append(
                generate_adversarial(
                    model,
                    images[i : i + batch],
                    labels[i : i + batch],
                    _craft_spec(norm),
                    eps,
                    seed=config.attack_seed + i,
                    device=device,
                ).cpu()
            )
        crafted[norm, float(eps)] = torch.cat(parts)
    return crafted


def store_crafted(
    config: CompareConfig, out: Path, seed: int, model: torch.nn.Module, attacked: Any, results: pd.DataFrame, device
) -> bool:
    """Craft and store the transfer examples of seed `seed` on its source network `model` (called by the
    source's own piece, so that crafting runs in parallel with the other pieces); nothing when stored ones
    with the same key exist. Returns whether it crafted."""
    budgets = _budgets(results[results["status"] == "ok"] if "status" in results else results)
    if not budgets:
        return False
    key = craft_key(config, out, seed, budgets, attacked)
    if _read_crafted(out, seed, key) is not None:
        return False
    crafted = craft_examples(config, model, attacked, budgets, device)
    path = layout.crafted_file(out, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"key": key, "examples": {f"{n}:{e!r}": x for (n, e), x in crafted.items()}}, tmp)
    tmp.replace(path)
    return True


def _read_crafted(out: Path, seed: int, key: dict) -> dict[tuple[str, float], torch.Tensor] | None:
    """The stored crafted examples of seed `seed` when their key is `key` (None otherwise, or unreadable)."""
    path = layout.crafted_file(out, seed)
    if not path.is_file():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError):
        return None
    if not isinstance(data, dict) or data.get("key") != key:
        return None
    out_map = {}
    for name, tensor in data["examples"].items():
        norm, _, eps = name.partition(":")
        out_map[norm, float(eps)] = tensor
    return out_map


def _transfer_seed(config, out, attacked, outcomes, seed, source, targets, budgets, settings, device, load):
    images, labels = attacked.images, attacked.labels.to(torch.int64)
    batch = config.eval_batch_size
    crafted = _read_crafted(out, seed, craft_key(config, out, seed, budgets, attacked))
    if crafted is None or any(b not in crafted for b in budgets):
        src = load(layout.run_dir(out, source, seed), device)
        crafted = craft_examples(config, src, attacked, budgets, device)
        del src
    rows = []
    n = len(labels)
    for loss in targets:
        run_dir = layout.run_dir(out, loss, seed)
        if _weights(run_dir) is None:
            continue
        model = load(run_dir, device)
        model.eval()
        clean = _predict(model, images.to(device), batch).cpu() == labels
        for norm, eps in budgets:
            white = _whitebox(outcomes, loss, seed, WORST_L2 if norm == "l2" else WORST, eps)
            if white is None or len(white) != n:
                continue
            held = (_predict(model, crafted[norm, eps].to(device), batch).cpu() == labels) & clean
            row = transfer_row(
                white,
                held,
                norm,
                eps,
                source,
                settings.transfer_tolerance,
                settings.effort_relative,
                settings.effort_min_count,
            )
            rows.append({"loss": loss, "seed": seed, **row})
    return pd.DataFrame(rows, columns=["loss", "seed"] + DIAGNOSTIC_COLUMNS)
