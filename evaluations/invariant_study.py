"""How many TaylorGLO candidates do the two invariants reject, and how often do they disagree?

Draws thetas from the CMA-ES starting distribution (mean 0, sigma 1.2 in 8-D; docs/method.md) and, for each
number of classes, reports the share that the "paper" rule (the authors' code) and the "exact" rule (the
target logit rises at initialization) reject (docs/method.md), and how often the rules disagree.

By default no training happens, so "would this rejected candidate have trained well?" has only a proxy:
the effective target p* that its learning rule drives toward from uniform outputs (docs/method.md). A
candidate with p* >= 0.5 (or no p*, it pursues p = 1) trains toward a confident, correct output.

With ``--train K`` the study answers it by training: from the same seeded sample it takes the first K
thetas of each of four groups (accepted by both rules, rejected by the paper rule only, by the exact rule
only, by both; rules read for the dataset's number of classes), trains each with common random numbers
(the same seed, so the same initial weights and batch order) and the same recipe as a cross-entropy
reference, and reports per group the share diverged, the validation accuracy and the share that
"trained well": validation accuracy >= ``--well`` (default 0.9) times the cross-entropy reference's.
A second table weights the groups by their share of the sample to estimate, for each rule, how many of
the candidates it rejects (and accepts) would have trained well.

    .venv/bin/python evaluations/invariant_study.py [--samples 10000] [--seed 0] [--out study.json]
    .venv/bin/python evaluations/invariant_study.py --train 25 --dataset digits --steps 150 [--out train.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from robust_glo.analysis import effective_target_batch, invariant_holds_batch

# The four groups of the training study: (name, passes the paper rule, passes the exact rule).
GROUPS = (
    ("accepted_both", True, True),
    ("rejected_paper_only", False, True),
    ("rejected_exact_only", True, False),
    ("rejected_both", False, False),
)


def study(thetas: np.ndarray, n_classes: int) -> dict[str, float | int | None]:
    """Shares over thetas ``(M, 8)`` for ``n_classes`` classes (in [0, 1]; None for an empty group)."""
    paper = invariant_holds_batch(thetas, n_classes, "paper")
    exact = invariant_holds_batch(thetas, n_classes, "exact")
    p_star = effective_target_batch(thetas, n_classes)
    # A p* of NaN means the target is pursued up to p = 1, which is confident and correct too.
    confident = np.isnan(p_star) | (p_star >= 0.5)
    paper_only = ~paper & exact  # rejected by the paper rule alone
    exact_only = paper & ~exact
    return {
        "classes": n_classes,
        "samples": int(len(thetas)),
        "rejected_paper": float(np.mean(~paper)),
        "rejected_exact": float(np.mean(~exact)),
        "rejected_both": float(np.mean(~paper & ~exact)),
        "disagreement": float(np.mean(paper != exact)),
        "rejected_by_paper_only": float(np.mean(paper_only)),
        "rejected_by_exact_only": float(np.mean(exact_only)),
        # The proxy for "rejected but would have trained well": confident p* among rejections.
        "paper_rejected_confident_p_star": _share(confident, ~paper),
        "exact_rejected_confident_p_star": _share(confident, ~exact),
        "paper_only_confident_p_star": _share(confident, paper_only),
        "exact_accepted_confident_p_star": _share(confident, exact),
    }


def _share(mask: np.ndarray, group: np.ndarray) -> float | None:
    """The share of ``group`` where ``mask`` holds; None for an empty group."""
    return float(np.mean(mask[group])) if group.any() else None


def pick_groups(thetas: np.ndarray, n_classes: int, k: int) -> dict[str, np.ndarray]:
    """Row indices of the first ``k`` thetas of each group in `GROUPS` (fewer where a group is smaller).

    The sample is random, so its first rows in a group are a random draw from that group.
    """
    paper = invariant_holds_batch(thetas, n_classes, "paper")
    exact = invariant_holds_batch(thetas, n_classes, "exact")
    return {name: np.flatnonzero((paper == p) & (exact == e))[:k] for name, p, e in GROUPS}


def theta_spec(theta: np.ndarray) -> str:
    """The ``taylorglo:[...]`` loss spec of one theta (repr keeps every float exact)."""
    return "taylorglo:[" + ",".join(repr(float(v)) for v in theta) + "]"


def train_study(
    thetas: np.ndarray,
    splits,
    k: int,
    *,
    steps: int,
    batch_size: int = 128,
    seed: int = 0,
    well: float = 0.9,
    device: str = "cpu",
    threads: int | None = 1,
    progress: bool = True,
) -> dict:
    """Train the first ``k`` thetas of each group in `GROUPS` and a cross-entropy reference on ``splits``.

    Every run uses the same seed (common random numbers). A run "trained well" when it did not diverge and
    its validation accuracy is >= ``well`` times the reference's. ``threads`` sets torch's intra-op threads
    for the study (1 is much faster on shared cores) and is restored afterwards.
    Returns ``{"reference", "threshold", "groups": [row per group], "rules": [row per rule], "runs"}``.
    """
    import torch
    from tqdm import tqdm

    from robust_glo.training import TrainConfig, train_run

    n_classes = splits.info.num_classes
    picks = pick_groups(thetas, n_classes, k)
    paper = invariant_holds_batch(thetas, n_classes, "paper")
    exact = invariant_holds_batch(thetas, n_classes, "exact")
    p_star = effective_target_batch(thetas, n_classes)

    def train(loss: str):
        config = TrainConfig.from_dict(
            dict(loss=loss, dataset=splits.info.name, steps=steps, seed=seed, device=device, batch_size=batch_size)
        )
        return train_run(config, out_dir=None, splits=splits, progress=False)

    saved_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        jobs = [(name, int(i)) for name, idx in picks.items() for i in idx]
        bar = tqdm(total=len(jobs) + 1, desc=f"training on {splits.info.name}", disable=not progress)
        ce = train("ce")
        bar.update()
        if ce.status != "ok" or ce.val_accuracy is None:
            raise RuntimeError(f"the cross-entropy reference did not train ({ce.status})")
        threshold = well * ce.val_accuracy
        runs = []
        for name, i in jobs:
            result = train(theta_spec(thetas[i]))
            acc = result.val_accuracy
            runs.append(
                {
                    "group": name,
                    "index": i,
                    "theta": [float(v) for v in thetas[i]],
                    "paper": bool(paper[i]),
                    "exact": bool(exact[i]),
                    "p_star": None if np.isnan(p_star[i]) else float(p_star[i]),
                    "status": result.status,
                    "val_accuracy": acc,
                    "trained_well": bool(result.status == "ok" and acc is not None and acc >= threshold),
                    "seconds": result.seconds,
                }
            )
            bar.update()
        bar.close()
    finally:
        torch.set_num_threads(saved_threads)

    chance = 1.0 / n_classes
    groups = []
    for name, passes_paper, passes_exact in GROUPS:
        rows = [r for r in runs if r["group"] == name]
        accs = np.array([r["val_accuracy"] for r in rows if r["status"] == "ok"], dtype=float)
        groups.append(
            {
                "group": name,
                "population_share": float(np.mean((paper == passes_paper) & (exact == passes_exact))),
                "n": len(rows),
                "diverged": _mean([r["status"] == "diverged" for r in rows]),
                "median_val_acc": float(np.median(accs)) if len(accs) else None,
                "mean_val_acc": float(np.mean(accs)) if len(accs) else None,
                # Finished but below 1.5x chance: the loss did not teach the classes (or taught them backwards:
                # below half of chance, the network learned to avoid the labelled class).
                "under_1.5x_chance": _mean([r["status"] == "ok" and r["val_accuracy"] < 1.5 * chance for r in rows]),
                "under_0.5x_chance": _mean([r["status"] == "ok" and r["val_accuracy"] < 0.5 * chance for r in rows]),
                "trained_well": _mean([r["trained_well"] for r in rows]),
            }
        )
    return {
        "dataset": splits.info.name,
        "n_classes": n_classes,
        "steps": steps,
        "batch_size": batch_size,
        "seed": seed,
        "well": well,
        "reference": {"loss": "ce", "val_accuracy": ce.val_accuracy, "seconds": ce.seconds},
        "threshold": threshold,
        "groups": groups,
        "rules": _rule_estimates(groups),
        "runs": runs,
    }


def _mean(flags: list[bool]) -> float | None:
    return float(np.mean(flags)) if flags else None


def _rule_estimates(groups: list[dict]) -> list[dict]:
    """Per rule: the share of the sample it rejects and, weighting the trained groups by their share of the
    sample (a stratified estimate), the share of its rejected and of its accepted thetas that train well."""
    by_name = {g["group"]: g for g in groups}

    def weighted(names: list[str]) -> float | None:
        parts = [
            (by_name[n]["population_share"], by_name[n]["trained_well"])
            for n in names
            if by_name[n]["trained_well"] is not None
        ]
        total = sum(w for w, _ in parts)
        return sum(w * v for w, v in parts) / total if total > 0 else None

    rejected = {"paper": ["rejected_paper_only", "rejected_both"], "exact": ["rejected_exact_only", "rejected_both"]}
    accepted = {"paper": ["accepted_both", "rejected_exact_only"], "exact": ["accepted_both", "rejected_paper_only"]}
    return [
        {
            "rule": rule,
            "rejects": sum(by_name[n]["population_share"] for n in rejected[rule]),
            "rejected_trained_well": weighted(rejected[rule]),
            "accepted_trained_well": weighted(accepted[rule]),
        }
        for rule in ("paper", "exact")
    ]


def print_train_study(result: dict) -> None:
    ref = result["reference"]
    print(
        f"\ntraining study on {result['dataset']} ({result['n_classes']} classes, rules read for that n): "
        f"{result['steps']} steps, batch {result['batch_size']}, seed {result['seed']} for every run"
    )
    print(
        f"cross-entropy reference: val accuracy {ref['val_accuracy']:.4f}; trained well = not diverged and "
        f"val accuracy >= {result['well']:g} x {ref['val_accuracy']:.4f} = {result['threshold']:.4f}"
    )
    table = pd.DataFrame(result["groups"]).set_index("group")
    print(table.to_string(float_format=lambda v: f"{v:.4f}", na_rep="-"))
    print("per rule, groups weighted by their share of the sample (population_share):")
    rules = pd.DataFrame(result["rules"]).set_index("rule")
    print(rules.to_string(float_format=lambda v: f"{v:.4f}", na_rep="-"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000, help="thetas to draw (default 10000)")
    parser.add_argument("--sigma", type=float, default=1.2, help="standard deviation (default 1.2)")
    parser.add_argument("--seed", type=int, default=0, help="numpy Generator seed (default 0)")
    parser.add_argument("--classes", type=int, nargs="+", default=[10, 100], help="default: 10 100")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    train = parser.add_argument_group("training study (only with --train)")
    train.add_argument(
        "--train",
        type=int,
        metavar="K",
        default=0,
        help="train the first K thetas of each of the four groups (default 0: no training)",
    )
    train.add_argument("--dataset", default="digits", help="dataset to train on (default digits)")
    train.add_argument("--steps", type=int, default=150, help="SGD steps per run (default 150)")
    train.add_argument("--batch-size", type=int, default=128, help="batch size (default 128)")
    train.add_argument("--train-seed", type=int, default=0, help="the one training seed of every run (default 0)")
    train.add_argument(
        "--well", type=float, default=0.9, help="trained well: val accuracy >= WELL x cross-entropy's (default 0.9)"
    )
    train.add_argument(
        "--test-size", type=int, default=500, help="test images to keep (test accuracy is not used here; default 500)"
    )
    train.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    train.add_argument("--device", default="cpu", help="training device (default cpu)")
    args = parser.parse_args(argv)
    if args.samples < 1 or args.sigma <= 0 or any(n < 2 for n in args.classes):
        parser.error("need --samples >= 1, --sigma > 0 and every --classes >= 2")
    if args.train < 0 or (
        args.train
        and (args.steps < 1 or args.batch_size < 1 or not 0 < args.well or args.test_size < 1 or args.threads < 1)
    ):
        parser.error(
            "need --train >= 0 and, with --train, --steps, --batch-size, --test-size, --threads >= 1 and --well > 0"
        )

    rng = np.random.default_rng(args.seed)
    thetas = rng.normal(0.0, args.sigma, size=(args.samples, 8))
    rows = [study(thetas, n) for n in args.classes]

    table = pd.DataFrame(rows).set_index("classes")
    shown = table.drop(columns="samples").T
    print(
        f"{args.samples} thetas ~ N(0, {args.sigma}^2 I), seed {args.seed}; shares of all thetas, "
        f"except *_confident_p_star: shares of that group with p* >= 0.5 or none"
    )
    print(shown.to_string(float_format=lambda v: f"{v:.4f}"))
    record = {"samples": args.samples, "sigma": args.sigma, "seed": args.seed, "results": rows}
    if args.train:
        from robust_glo.data import load_dataset
        from robust_glo.errors import RobustGloError

        try:
            splits = load_dataset(args.dataset, test_size=args.test_size)
        except RobustGloError as exc:
            parser.error(str(exc))
        training = train_study(
            thetas,
            splits,
            args.train,
            steps=args.steps,
            batch_size=args.batch_size,
            seed=args.train_seed,
            well=args.well,
            device=args.device,
            threads=args.threads,
        )
        print_train_study(training)
        record["training"] = training
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
