"""A small synthetic benchmark directory for report tests: every file the report reads, no training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

LOSSES = ["ce", "label_smoothing:0.1", "taylorglo:[0.1,-0.2,0.3,0.4,-0.5,1.5,0.2,-0.3]"]
SEEDS = [0, 1, 2]
ATTACKS = ["fgsm", "pgd:steps=10"]
EPS = [0.0, 0.05, 0.1]
UNRELIABLE = ("label_smoothing:0.1", 2)  # this (loss, seed) fails the pgd_le_fgsm check
DIVERGED = (LOSSES[2], 3)  # an extra seed whose training diverged: NaN placeholder rows


def accuracy_grid() -> dict[tuple[str, int, str, float], float]:
    """Deterministic accuracies with seed noise: clean > fgsm > pgd, falling with eps."""
    rng = np.random.default_rng(7)
    acc = {}
    for li, loss in enumerate(LOSSES):
        for seed in SEEDS:
            clean = 0.80 + 0.02 * li + rng.normal(0, 0.01)
            acc[loss, seed, "clean", 0.0] = clean
            for ai, attack in enumerate(ATTACKS):
                for eps in EPS:
                    drop = (3.0 + ai) * eps * (1.0 - 0.15 * li) + (rng.normal(0, 0.01) if eps else 0.0)
                    acc[loss, seed, attack, eps] = clean - max(drop, 0.0)
            for eps in EPS:
                acc[loss, seed, "worst", eps] = min(acc[loss, seed, a, eps] for a in ATTACKS) - (0.005 if eps else 0)
    return acc


def write_synthetic(root: Path, *, optional: bool = True) -> pd.DataFrame:
    """Write results.csv (and, with `optional`, every other report input) under `root`; return results."""
    root.mkdir(parents=True, exist_ok=True)
    rows, outcomes = [], []
    n = 200
    difficulty = np.random.default_rng(11).random(n)  # shared by every network: the same test images
    noise = np.random.default_rng(12)
    for (loss, seed, attack, eps), a in accuracy_grid().items():
        reliable = (loss, seed) != UNRELIABLE
        correct = round(a * n)
        score = difficulty + 0.3 * noise.random(n)
        bits = np.zeros(n, dtype=bool)
        bits[np.argsort(score)[:correct]] = True  # the easiest images stay correct
        outcomes.append(
            {
                "loss": loss,
                "seed": seed,
                "dataset": "digits",
                "model": "digits-cnn",
                "attack": attack,
                "eps": eps,
                "n": n,
                "correct": correct,
                "images": "synthetic200",
                "bits": np.packbits(bits).tobytes().hex(),
            }
        )
        rows.append(
            {
                "loss": loss,
                "seed": seed,
                "dataset": "digits",
                "model": "digits-cnn",
                "attack": attack,
                "eps": eps,
                "norm": "Linf",
                "n": n,
                "correct": correct,
                "accuracy": correct / n,
                "params": json.dumps({"steps": 10} if attack.startswith("pgd") else {}),
                "reliable": reliable,
                "flags": "" if reliable else "pgd_le_fgsm",
                "status": "ok",
            }
        )
    for attack in ["clean"] + ATTACKS + ["worst"]:
        for eps in [0.0] if attack == "clean" else EPS:
            rows.append(
                {
                    "loss": DIVERGED[0],
                    "seed": DIVERGED[1],
                    "dataset": "digits",
                    "model": "digits-cnn",
                    "attack": attack,
                    "eps": eps,
                    "norm": "Linf",
                    "n": float("nan"),
                    "correct": float("nan"),
                    "accuracy": float("nan"),
                    "params": "",
                    "reliable": False,
                    "flags": "diverged",
                    "status": "diverged",
                }
            )
    results = pd.DataFrame(rows)
    results.to_csv(root / "results.csv", index=False)
    if not optional:
        return results
    pd.DataFrame(outcomes).to_csv(root / "outcomes.csv", index=False)

    flag_rows = []
    for loss in LOSSES:
        for seed in SEEDS:
            for check in ("eps0_equals_clean", "monotone_in_eps", "pgd_le_fgsm", "zero_gradients"):
                fail = (loss, seed) == UNRELIABLE and check == "pgd_le_fgsm"
                flag_rows.append(
                    {
                        "loss": loss,
                        "seed": seed,
                        "check": check,
                        "status": "fail" if fail else "pass",
                        "value": 0.03 if fail else 0.0,
                        "threshold": 0.01,
                        "detail": "pgd:steps=10 0.5000 > fgsm 0.4700 at eps=0.05" if fail else "",
                        "explanation": f"plain-language meaning of {check}",
                    }
                )
    pd.DataFrame(flag_rows).to_csv(root / "flags.csv", index=False)

    evolve = root / "evolve"
    evolve.mkdir(exist_ok=True)
    hist = []
    rng = np.random.default_rng(3)
    statuses = ["trained", "rejected", "trained", "diverged", "trained", "rejected"]
    for gen in range(3):
        for idx, status in enumerate(statuses):
            fit = 0.5 - 0.1 * gen - 0.02 * idx if status == "trained" else (1.0 if status == "rejected" else 1e6)
            hist.append(
                {
                    "generation": gen,
                    "index": idx,
                    **{f"theta{k}": float(rng.normal()) for k in range(8)},
                    "status": status,
                    "fitness": fit,
                    "val_accuracy": 1 - fit if status == "trained" else float("nan"),
                    "seconds": 1.5,
                }
            )
    pd.DataFrame(hist).to_csv(evolve / "history.csv", index=False)
    reeval = []
    for rank, (search, fits) in enumerate([(0.20, [0.30, 0.32]), (0.25, [0.28, 0.26])]):
        for k, fit in enumerate(fits):
            reeval.append(
                {
                    "rank": rank,
                    "generation": 2,
                    "index": rank,
                    "seed_index": k,
                    "seed": 100 + k,
                    **{f"theta{j}": 0.5 * rank + j / 10 for j in range(8)},
                    "status": "trained",
                    "fitness": fit,
                    "val_accuracy": 1 - fit,
                    "robust_accuracy": "",
                    "seconds": 1.0,
                    "search_fitness": search,
                }
            )
    pd.DataFrame(reeval).to_csv(evolve / "reevaluation.csv", index=False)
    (evolve / "best_loss.json").write_text(json.dumps({"kind": "taylorglo", "theta": json.loads(LOSSES[2][10:])}))

    analysis = [
        {
            "spec": "ce",
            "classes": 10,
            "effective_target": None,
            "label_smoothing_equivalent": None,
            "target_logit_rises_at_init": True,
            "invariant": None,
        },
        {
            "spec": "label_smoothing:0.1",
            "classes": 10,
            "effective_target": 0.91,
            "label_smoothing_equivalent": 0.1,
            "target_logit_rises_at_init": True,
            "invariant": None,
        },
        {
            "spec": LOSSES[2],
            "classes": 10,
            "effective_target": 0.7321,
            "label_smoothing_equivalent": 0.2977,
            "target_logit_rises_at_init": True,
            "invariant": {"paper": True, "exact": True},
            "theta": json.loads(LOSSES[2][10:]),
        },
    ]
    (root / "analysis" / "figures").mkdir(parents=True, exist_ok=True)
    (root / "analysis" / "analysis.json").write_text(json.dumps(analysis))
    _tiny_png(root / "analysis" / "figures" / "learning_rule.png")
    (root / "losses.json").write_text(json.dumps([{"spec": LOSSES[2], "label": "taylorglo (evolved)"}]))
    (root / "suite.json").write_text(
        json.dumps(
            {
                "name": "synthetic",
                "description": "A synthetic table.",
                "dataset": "digits",
                "baseline": "ce",
                "alpha": 0.05,
                "bootstrap": 2000,
                "train": {"steps": 50},
                "attack_seed": 0,
                "evolve": {"generations": 3, "seed": 4},
            }
        )
    )
    (root / "stages.json").write_text(
        json.dumps(
            {
                "stages": {
                    "evolve": {"status": "done", "last_seconds": 12.5, "total_seconds": 30.25, "pieces": {"done": 1}},
                    "train": {"status": "done", "last_seconds": 40.0, "total_seconds": 80.0, "pieces": {"done": 9}},
                },
                "invocations": [
                    {
                        "started": "2025-01-01T00:00:00+00:00",
                        "finished": None,
                        "status": "running",
                        "suite": "a.toml",
                        "stages": ["train"],
                    },
                    {
                        "started": "2025-01-02T00:00:00+00:00",
                        "finished": "2025-01-02T01:00:00+00:00",
                        "status": "done",
                        "suite": "tiny",
                        "stages": ["evolve", "train"],
                        "out": "runs/tiny",
                    },
                ],
            }
        )
    )
    (root / "environment.json").write_text(
        json.dumps(
            {
                "created": "2025-01-01T00:00:00+00:00",
                "versions": {"torch": "9.9.9", "pandas": "8.8.8"},
                "hardware": {"cpu_count": 2, "cuda": False},
            }
        )
    )
    return results


def write_outcome_study(root: Path, cells, name: str) -> pd.DataFrame:
    """results.csv, outcomes.csv and suite.json of a digits study from its per-image outcomes: `cells` are
    (loss, seed, attack, eps, bits) with bits a bool array `(N,)` (True: still correct), all on one image
    set "img<N>"; ce is the baseline, 1,000 bootstrap replicates. Returns the outcome rows."""
    from robust_glo.robustness.outcomes import pack_bits

    results, outcomes = [], []
    for loss, seed, attack, eps, bits in cells:
        key = {"loss": loss, "seed": seed, "dataset": "digits", "model": "digits-cnn", "attack": attack}
        key |= {"eps": eps, "n": len(bits), "correct": int(bits.sum())}
        outcomes.append(key | {"images": f"img{len(bits)}", "bits": pack_bits(bits)})
        results.append(key | {"norm": "Linf", "accuracy": bits.mean(), "status": "ok", "reliable": True})
    pd.DataFrame(results).to_csv(root / "results.csv", index=False)
    pd.DataFrame(outcomes).to_csv(root / "outcomes.csv", index=False)
    suite = {"name": name, "dataset": "digits", "baseline": "ce", "bootstrap": 1000, "bootstrap_seed": 0}
    (root / "suite.json").write_text(json.dumps(suite))
    return pd.DataFrame(outcomes)


def _tiny_png(path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 1.5))
    fig.subplots().plot([0, 1], [1, 0])
    fig.savefig(path, format="png", dpi=40)
