"""Did the robust evolution search anywhere the clean one did not? From a finished benchmark's evolve folder.

Nothing is run again. For two evolutions of one suite whose searches share CMA-ES seeds (the standard
suite's `accuracy` and `robust`), printed per search: the generations that sampled the very same candidates
(both start from the same samples; a generation repeats only where both fitness functions ranked every
earlier generation's best candidates in the same order) and whether both chose the same theta. For the
constrained evolution: per rung, how many trained candidates met the clean-accuracy floor, and Spearman's
rho between clean validation accuracy and the objective and between clean and robust accuracy
(scipy.stats.spearmanr), which shows whether the objective could rank candidates otherwise than clean
accuracy does.

    .venv/bin/python evaluations/evolution_steering.py --dir reports/fashion-mnist-standard
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from scipy import stats

from robust_glo.reporting.inputs import EvolutionInputs, read_searches
from robust_glo.reporting.tables import constraint_share, shared_sampling


def _rungs(evolution: EvolutionInputs) -> list[pd.DataFrame]:
    """Each search's rungs.csv (every rung's record), where it was kept."""
    paths = [Path(s.folder) / "rungs.csv" for s in evolution.searches]
    return [pd.read_csv(p) for p in paths if p.is_file()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True, help="a benchmark folder with evolve/<name>/search<k>")
    parser.add_argument("--first", default="accuracy", help="the unconstrained evolution (default: accuracy)")
    parser.add_argument("--second", default="robust", help="the evolution to compare with it (default: robust)")
    args = parser.parse_args(argv)
    if not (args.dir / "evolve").is_dir():
        parser.exit(2, f"evolution_steering.py: error: --dir {args.dir} has no evolve folder; give a benchmark run\n")
    evolutions = []
    for name in (args.first, args.second):
        folder = args.dir / "evolve" / name
        evolution = read_searches(folder) if folder.is_dir() else None
        if evolution is None:
            parser.exit(
                2,
                f"evolution_steering.py: error: {folder} has no search<k> folders; give a run of two named "
                f"evolutions with several searches each (--first {args.first}, --second {args.second}), as "
                "fashion-mnist-standard runs\n",
            )
        evolutions.append(evolution)
    first, second = evolutions
    print(f"{args.dir}: {second.name} against {first.name}, searches of the same seed")
    for s in shared_sampling(second, first):
        apart = "never" if s.first_apart is None else f"from generation {s.first_apart}"
        choice = "the same theta" if s.same_choice else "different thetas"
        print(
            f"  search {s.search} (seed {s.seed}): {s.same} of {s.generations} generations identical, "
            f"apart {apart}; {choice}"
        )
    rungs = [r for r in _rungs(second) if "objective" in r]
    if not rungs:
        print(f"{second.name}: no clean-accuracy constraint recorded (rungs.csv without `objective`)")
        return 0
    table = pd.concat(rungs)
    trained = table[(table["status"] == "trained") & table["objective"].notna()]
    print(f"{second.name}, candidates trained at each rung (all searches):")
    for rung, d in trained.groupby("rung"):
        met, n = constraint_share(d)
        rho_obj = stats.spearmanr(d["val_accuracy"], d["objective"]).statistic
        rho_rob = stats.spearmanr(d["val_accuracy"], d["robust_accuracy"]).statistic
        print(
            f"  rung {int(rung)}: {n} trained, {met} met the clean floor; "
            f"rho(clean, objective) {rho_obj:+.3f}, rho(clean, robust) {rho_rob:+.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
