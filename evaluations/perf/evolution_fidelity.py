"""Cost to quality of the evolution: flat search (every candidate trains the full budget) against successive
halving inside each generation, with the same CMA-ES seeds.

For every search seed and both fidelities, one evolution runs (`run_evolution`, resumable in
--out/<fidelity>-s<seed>). After every generation the script records the training steps spent so far and
the best candidate so far (lowest search fitness among those trained to the full budget), and
re-evaluates that candidate as the final choice does: trained again at the full budget on fresh seeds
(`reeval_seed`), its mean validation accuracy. Cross-entropy is trained on the same fresh seeds with the
same recipe as the reference. Re-evaluations are the measurement, not part of a search's cost.

Printed, as ratios measured in this one run (mean and standard deviation over the search seeds):

- steps halving needs to reach the flat search's final best (its mean minus one standard deviation over
  seeds), divided by the flat search's total steps (goal <= 1/3);
- full-training equivalents (steps spent / steps of one candidate's full budget) each fidelity needs until
  its best re-evaluated validation accuracy reaches cross-entropy's (goal <= 5); a search that never gets
  there is reported as not reaching it within its budget.

Both curves (best re-evaluated accuracy against steps spent, mean and spread over search seeds) go to
--out/evolution_fidelity.png, the numbers to --out/evolution_fidelity.json and .csv.

    .venv/bin/python evaluations/perf/evolution_fidelity.py                      # Fashion-MNIST defaults
    .venv/bin/python evaluations/perf/evolution_fidelity.py --smoke --out /tmp/f  # digits, seconds (tested)

Searches and re-evaluations are stored in --out and reused, so an interrupted run resumes, and the work can
be split over processes: `--only halving` in one, `--only flat` in another (one torch thread each), then
one plain run with the same --out gathers them (nothing is trained again).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from robust_glo.evolution import EvolveConfig, TaylorGLOProblem, reeval_seed, run_evolution
from robust_glo.losses import get_loss
from robust_glo.models import create_model
from robust_glo.training import evaluate_accuracy, fit
from robust_glo.utils import run_metadata


def _ce_accuracy(problem: TaylorGLOProblem, seeds: list[int]) -> list[float]:
    """Cross-entropy with the search's recipe and budget, on the re-evaluation seeds."""
    out = []
    for seed in seeds:
        model = create_model(problem.model_name, problem.info, seed=seed)
        fit(model, get_loss("ce"), problem.splits.train, steps=problem.steps, seed=seed, **problem.fit_options())
        out.append(evaluate_accuracy(model, problem.splits.val, batch_size=problem.recipe.eval_batch_size))
    return out


def _tag(seeds: list[int]) -> str:
    return "seeds-" + "-".join(map(str, seeds))


def _stored(path: Path, compute: Callable[[], list[float]]) -> list[float]:
    """`compute()`, stored in `path` the first time and read from it after."""
    if path.is_file():
        return json.loads(path.read_text())
    value = compute()
    path.write_text(json.dumps(value))
    return value


def _curve(history: pd.DataFrame, reevaluate) -> pd.DataFrame:
    """Per generation: steps spent so far, the best fully trained candidate so far, its re-evaluated accuracy."""
    rows, best, spent = [], None, 0
    for g, gen in history.groupby("generation", sort=True):
        spent += int(gen["steps"].fillna(0).sum())
        trained = gen[gen["status"] == "trained"]
        if len(trained):
            top = trained.sort_values(["fitness", "index"]).iloc[0]
            if best is None or top["fitness"] < best["fitness"]:
                best = top
        accuracy = reevaluate(tuple(float(best[f"theta{k}"]) for k in range(8))) if best is not None else math.nan
        rows.append({"generation": int(g), "steps": spent, "best_reevaluated_accuracy": accuracy})
    return pd.DataFrame(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="digits, tiny budgets: checks the script end to end")
    p.add_argument("--dataset", default=None)
    p.add_argument("--generations", type=int, default=None)
    p.add_argument("--popsize", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--eta", type=int, default=3)
    p.add_argument("--rungs", type=int, default=3)
    p.add_argument("--search-seeds", type=int, default=3)
    p.add_argument("--reeval-seeds", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/perf/evolution_fidelity")
    p.add_argument("--only", choices=("flat", "halving"), default=None, help="run only these searches (no summary)")
    args = p.parse_args()
    small = dict(dataset="digits", generations=2, popsize=9, steps=90)
    full = dict(dataset="fashion-mnist", generations=6, popsize=12, steps=600)
    sizes = {k: (getattr(args, k) or (small if args.smoke else full)[k]) for k in full}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    common = dict(**sizes, eta=args.eta, rungs=args.rungs, topk=1, reeval_seeds=1, threads=args.threads, progress=False)
    common["backend"] = "local"  # one process, --threads threads: split the work with --only instead
    problem = TaylorGLOProblem.from_config(EvolveConfig.create(out=str(out / "probe"), **common))
    fresh = [reeval_seed(10_000, k) for k in range(args.reeval_seeds)]  # one fresh set for every search
    t0 = time.perf_counter()
    ce = _stored(out / f"ce-{_tag(fresh)}.json", lambda: _ce_accuracy(problem, fresh))

    def reevaluate(cache_file: Path) -> Callable[[tuple], float]:
        """Re-evaluation of a theta on the fresh seeds, stored per search so that a rerun reuses it."""
        cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}

        def run(theta: tuple) -> float:
            key = repr(tuple(round(t, 12) for t in theta))
            if key not in cache:
                cache[key] = float(np.mean([problem.evaluate(theta, s).val_accuracy or 0.0 for s in fresh]))
                cache_file.write_text(json.dumps(cache, indent=1))
            return cache[key]

        return run

    curves, timing = [], {}
    for fidelity in [args.only] if args.only else ["flat", "halving"]:
        for s in range(args.search_seeds):
            config = EvolveConfig.create(out=str(out / f"{fidelity}-s{s}"), seed=s, fidelity=fidelity, **common)
            t1 = time.perf_counter()
            result = run_evolution(config, resume=True)
            timing[f"{fidelity}-s{s}"] = time.perf_counter() - t1
            reevaluated = reevaluate(result.out_dir / f"reevaluated-{_tag(fresh)}.json")
            history = pd.read_csv(result.out_dir / "history.csv")
            curve = _curve(history, reevaluated)
            curve["fidelity"], curve["search_seed"] = fidelity, s
            curves.append(curve)
            print(
                f"{fidelity:8s} seed {s}: {int(curve['steps'].iloc[-1]):,} steps, best re-evaluated accuracy "
                f"{curve['best_reevaluated_accuracy'].iloc[-1]:.4f} ({timing[f'{fidelity}-s{s}']:.0f} s)",
                flush=True,
            )
    if args.only:
        print(f"{args.only} searches done; run again without --only to gather them and print the ratios")
        return
    table = pd.concat(curves, ignore_index=True)
    table.to_csv(out / "evolution_fidelity.csv", index=False)
    finals = table.groupby(["fidelity", "search_seed"]).last()
    flat_final = finals.loc["flat"]["best_reevaluated_accuracy"]
    target = float(flat_final.mean() - flat_final.std(ddof=1)) if len(flat_final) > 1 else float(flat_final.mean())
    flat_total = float(finals.loc["flat"]["steps"].mean())
    ce_mean = float(np.mean(ce))

    def steps_to(fidelity: str, level: float) -> list[float]:
        out = []
        for _, curve in table[table["fidelity"] == fidelity].groupby("search_seed"):
            hit = curve[curve["best_reevaluated_accuracy"] >= level]
            out.append(float(hit["steps"].iloc[0]) if len(hit) else math.nan)
        return out

    halving_steps = steps_to("halving", target)
    ratio = [h / flat_total for h in halving_steps]
    fte = {f: [v / sizes["steps"] for v in steps_to(f, ce_mean)] for f in ("flat", "halving")}

    def fmt(values: list[float]) -> str:
        ok = [v for v in values if not math.isnan(v)]
        missing = len(values) - len(ok)
        if not ok:
            return f"not reached by any of {len(values)} search seeds"
        spread = f" ± {np.std(ok, ddof=1):.3f}" if len(ok) > 1 else ""
        tail = f" ({missing} of {len(values)} search seeds never reached it)" if missing else ""
        return f"{np.mean(ok):.3f}{spread}{tail}"

    summary = {
        "sizes": sizes,
        "eta": args.eta,
        "rungs": args.rungs,
        "search_seeds": args.search_seeds,
        "reeval_seeds": fresh,
        "ce_val_accuracy": ce,
        "flat_final_best": flat_final.tolist(),
        "halving_final_best": finals.loc["halving"]["best_reevaluated_accuracy"].tolist(),
        "target_flat_mean_minus_sd": target,
        "flat_total_steps_mean": flat_total,
        "halving_total_steps": finals.loc["halving"]["steps"].tolist(),
        "steps_ratio_halving_to_flat_best": ratio,
        "full_training_equivalents_to_ce": fte,
        "seconds": timing,
        "wall_seconds": time.perf_counter() - t0,
        "environment": run_metadata(),
    }
    (out / "evolution_fidelity.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"cross-entropy, same recipe and budget: val accuracy {ce_mean:.4f} on {len(fresh)} fresh seeds")
    print(
        f"flat final best {flat_final.mean():.4f} ± {flat_final.std(ddof=1) if len(flat_final) > 1 else 0:.4f}; "
        f"halving final best {finals.loc['halving']['best_reevaluated_accuracy'].mean():.4f}"
    )
    print(f"steps halving needs to reach the flat final best (>= {target:.4f}) / flat total steps: {fmt(ratio)}")
    for fidelity in ("flat", "halving"):
        print(f"full-training equivalents until {fidelity} reaches cross-entropy ({ce_mean:.4f}): {fmt(fte[fidelity])}")
    _plot(table, ce_mean, out / "evolution_fidelity.png")
    print(f"figure: {out / 'evolution_fidelity.png'}; numbers: {out / 'evolution_fidelity.json'}")


def _plot(table: pd.DataFrame, ce: float, path: Path) -> None:
    """Each search seed as a thin step line; per fidelity, the mean over seeds (on a common grid of steps,
    each seed holding its last value) and the min-max band."""
    import matplotlib

    matplotlib.use("Agg")
    import seaborn as sns
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.2), layout="constrained")
    ax = fig.subplots()
    colours = dict(zip(("flat", "halving"), sns.color_palette("colorblind", 2)))
    for fidelity, rows in table.groupby("fidelity"):
        grid = np.linspace(0, rows["steps"].max(), 200)
        values = []
        for _, curve in rows.groupby("search_seed"):
            curve = curve.sort_values("steps")
            ax.step(
                curve["steps"],
                curve["best_reevaluated_accuracy"],
                where="post",
                color=colours[fidelity],
                lw=0.7,
                alpha=0.5,
            )
            idx = np.searchsorted(curve["steps"].to_numpy(), grid, side="right") - 1
            col = curve["best_reevaluated_accuracy"].to_numpy()
            values.append(np.where(idx >= 0, col[np.clip(idx, 0, None)], np.nan))
        values = np.array(values)
        ok = ~np.isnan(values).any(axis=0)
        ax.plot(grid[ok], values[:, ok].mean(axis=0), color=colours[fidelity], lw=2.2, label=f"{fidelity} (mean)")
        ax.fill_between(
            grid[ok], values[:, ok].min(axis=0), values[:, ok].max(axis=0), color=colours[fidelity], alpha=0.15
        )
    ax.axhline(ce, color="grey", linestyle=":", label="cross-entropy")
    ax.set_xlabel("training steps spent by the search")
    ax.set_ylabel("best candidate's re-evaluated val. accuracy")
    ax.legend(frameon=False, loc="lower right")
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
