"""AutoAttack coverage and its cost per network: does the standard suite's worst case reach the reference
AutoAttack ensemble, and what does one network's evaluation cost before and after the suite ran the full
ensemble at every budget?

On one network trained with the standard suite's recipe (default: Baikal, seed 0, 1,500 steps on
Fashion-MNIST), on the suite's attacked images (the first `--n` of the seeded test shuffle), three
evaluations, timed in this one run:

- `before`: the standard suite's attack list before the AutoAttack-coverage change (FGSM, PGD-20 x 2
  restarts, APGD-CE and APGD-DLR from eps 0.05, Square with 1,000 queries at eps 0.1, PGD-20 and APGD-CE in
  L2), without diagnostics;
- `after`: the full AutoAttack ensemble at every budget of both threat models (AFTER below: the standard
  suite's list when this was measured; the suite now runs the ensemble at its largest budgets only, because
  of the cost measured here), with diagnostics on 200 images;
- `aa-reference`: the reference AutoAttack ensemble run alone (APGD-CE -> APGD-T -> FAB-T -> Square 5,000),
  at the largest L-infinity eps (where the goal is judged; `--reference-eps all` for every eps).

Prints the worst case of each at every eps, the gap `after - aa-reference` (the goal: at most 0.5 points at
eps 0.1), and seconds per network (attacks and diagnostics apart) with the ratio after / before.

With `--reference DIR` (a checkout of github.com/fra31/auto-attack, the authors' code: the folder holding
its `autoattack` package), the authors' AutoAttack, `version="standard"`, also runs on the same images at
aa-reference's eps, as a cross-check of `aa-reference` (torchattacks' ports at the reference budgets). It
is not a dependency of robust-glo; the script only imports it from that folder.

    .venv/bin/python evaluations/perf/aa_coverage_cost.py                # ~20 min on 2 cores
    .venv/bin/python evaluations/perf/aa_coverage_cost.py --smoke        # digits, seconds

Writes evaluations/perf/results/aa_coverage_cost.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from robust_glo.benchmark.suite import load_suite
from robust_glo.data import load_dataset
from robust_glo.robustness import run_evaluation
from robust_glo.robustness.diagnostics import DiagnosticSettings, run_diagnostics
from robust_glo.training import train_run
from robust_glo.utils import run_metadata

AFTER = [  # AutoAttack's order, each later attack on what is still standing, at every budget
    "fgsm",
    "fgsm:loss=train",
    "pgd:steps=20",
    "apgd-ce:cascade=true",
    "apgd-t:cascade=true",
    "fab-t:cascade=true",
    "square:cascade=true",
    "pgd:norm=l2:steps=20",
    "apgd-ce:norm=l2:cascade=true",
    "apgd-t:norm=l2:cascade=true",
    "fab-t:norm=l2:cascade=true",
    "square:norm=l2:cascade=true",
]
BEFORE = [
    "fgsm",
    "pgd:steps=20:restarts=2",
    "apgd-ce:cascade=true:min_eps=0.05",
    "apgd-dlr:cascade=true:min_eps=0.05",
    "square:cascade=true:n_queries=1000:min_eps=0.1",
    "pgd:norm=l2:steps=20",
    "apgd-ce:norm=l2:cascade=true:min_eps=1.5",
]


def _worst(ev, label: str = "worst") -> dict[str, float]:
    rows = ev.results[ev.results["attack"] == label]
    return {f"{float(r.eps):g}": float(r.accuracy) for r in rows.itertuples() if r.eps > 0}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loss", default="baikal")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=500, help="test images attacked (the suite's [attack] n)")
    parser.add_argument("--runs", default="runs/perf/aa_coverage_cost", help="where the network is trained")
    parser.add_argument("--out", default="evaluations/perf/results/aa_coverage_cost.json")
    parser.add_argument("--smoke", action="store_true", help="digits, 100 steps, 30 images: a half-minute check")
    parser.add_argument("--reference", help="folder with fra31/auto-attack's autoattack package (optional)")
    parser.add_argument(
        "--reference-eps",
        default="max",
        help="L-inf eps for aa-reference and the authors' AutoAttack: 'max' (the largest, where the goal is "
        "judged; default), 'all', or a comma list",
    )
    args = parser.parse_args(argv)

    suite = load_suite("fashion-mnist-standard")
    cfg = suite.train_config(args.loss, args.seed)
    attacks_after, eps, eps_l2 = list(AFTER), list(suite.eps), list(suite.eps_l2)
    diag_settings = DiagnosticSettings.from_dict({**suite.diagnostics, "n": 200})
    if args.smoke:
        cfg = suite.compare_config([args.loss]).train_config(args.loss, args.seed)
        cfg = type(cfg).from_dict({**cfg.to_dict(), "dataset": "digits", "model": None, "steps": 100}).resolved()
        args.n = min(args.n, 30)
        diag_settings = DiagnosticSettings(n=20, effort_factor=2, effort_restarts=2)
    positive = [e for e in eps if e > 0]
    if args.reference_eps == "max":
        reference_eps = [max(positive)]
    elif args.reference_eps == "all":
        reference_eps = positive
    else:
        reference_eps = [float(v) for v in args.reference_eps.split(",")]
    run = train_run(cfg, Path(args.runs) / f"{args.loss}-s{args.seed}" / cfg.dataset)
    test = load_dataset(cfg.dataset, test_size=args.n, **cfg.recipe.split_options()).test
    x, y = test.images, test.labels
    load = os.getloadavg()[0]
    out: dict = {"loss": args.loss, "seed": args.seed, "n": args.n, "dataset": cfg.dataset, "steps": cfg.steps}

    t0 = time.perf_counter()
    before = run_evaluation(run.model, x, y, BEFORE, eps, eps_l2=eps_l2, seed=suite.attack_seed)

    def save() -> None:  # after every part: a run stopped midway keeps what it measured
        if not args.smoke:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(out, indent=1, default=str))
            print(f"saved {', '.join(k for k in out if isinstance(out[k], dict))} to {args.out}", flush=True)

    out["before"] = {
        "attacks": BEFORE,
        "seconds": time.perf_counter() - t0,
        "worst": _worst(before),
        "worst_l2": _worst(before, "worst:l2"),
    }

    save()
    t0 = time.perf_counter()
    after = run_evaluation(
        run.model, x, y, attacks_after, eps, eps_l2=eps_l2, seed=suite.attack_seed, train_loss=args.loss
    )  # the training loss: fgsm:loss=train (the paper's FGSM) attacks with it
    attack_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    diag = run_diagnostics(run.model, x, y, after, diag_settings, seed=suite.attack_seed)
    out["after"] = {
        "attacks": attacks_after,
        "seconds": attack_seconds,
        "diagnostics_seconds": time.perf_counter() - t0,
        "worst": _worst(after),
        "worst_l2": _worst(after, "worst:l2"),
        "per_attack_seconds": {
            f"{r.attack}@{float(r.eps):g}": round(float(r.seconds), 2)
            for r in after.results.itertuples()
            if r.eps > 0 and r.attack not in ("worst", "worst:l2")
        },
        "diagnostics": diag.drop(columns=["detail"]).to_dict("records"),
    }

    save()
    t0 = time.perf_counter()
    reference = run_evaluation(run.model, x, y, ["aa-reference"], [0, *reference_eps], seed=suite.attack_seed)
    out["aa_reference"] = {"seconds": time.perf_counter() - t0, "worst": _worst(reference)}

    save()
    if args.reference:
        out["fra31"] = _fra31(args.reference, run.model, x, y, reference_eps, suite.attack_seed)
    gaps = {e: out["after"]["worst"][e] - out["aa_reference"]["worst"][e] for e in out["aa_reference"]["worst"]}
    out["gap_after_minus_reference"] = gaps
    out["ratio_after_over_before"] = (attack_seconds + out["after"]["diagnostics_seconds"]) / out["before"]["seconds"]
    out["load_average_start"] = load
    out["load_average_end"] = os.getloadavg()[0]
    out["threads"] = torch.get_num_threads()
    out["environment"] = run_metadata()

    print(f"{args.loss} seed {args.seed}, {args.n} test images of {cfg.dataset}, {cfg.steps} steps")
    fra31 = out.get("fra31", {}).get("worst", {})
    print(f"{'eps':>6} {'before':>8} {'after':>8} {'aa-ref':>8} {'after-aa':>9} {'fra31':>8}")
    for e in out["aa_reference"]["worst"]:
        ref = f"{100 * fra31[e]:7.1f}%" if e in fra31 else "not run"
        print(
            f"{e:>6} {100 * out['before']['worst'][e]:7.1f}% {100 * out['after']['worst'][e]:7.1f}% "
            f"{100 * out['aa_reference']['worst'][e]:7.1f}% {100 * gaps[e]:+8.1f} {ref:>8}"
        )
    print(
        f"seconds per network: before {out['before']['seconds']:.0f}, after {attack_seconds:.0f} attacks + "
        f"{out['after']['diagnostics_seconds']:.0f} diagnostics (ratio {out['ratio_after_over_before']:.2f}x); "
        f"aa-reference alone (L-inf only) {out['aa_reference']['seconds']:.0f}"
    )
    print(
        f"load average {load:.2f} -> {out['load_average_end']:.2f} on {os.cpu_count()} cores, {out['threads']} threads"
    )
    if not args.smoke:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=1, default=str))
    return out


def _fra31(folder: str, model, x, y, eps_values, seed: int) -> dict:
    """The authors' AutoAttack (version="standard") at every eps: robust accuracy and seconds."""
    import sys

    sys.path.insert(0, str(Path(folder).resolve()))
    from autoattack import AutoAttack  # the authors' code, from the given folder only

    model.eval()
    worst, seconds = {}, {}
    for e in eps_values:
        t0 = time.perf_counter()
        adversary = AutoAttack(model, norm="Linf", eps=e, version="standard", seed=seed, device="cpu", verbose=False)
        adv = adversary.run_standard_evaluation(x.clone(), y.clone(), bs=500)
        with torch.no_grad():
            worst[f"{e:g}"] = float((model(adv).argmax(1) == y).float().mean())
        seconds[f"{e:g}"] = time.perf_counter() - t0
    return {"worst": worst, "seconds": seconds, "source": "github.com/fra31/auto-attack", "version": "standard"}


if __name__ == "__main__":
    main()
