"""Where a finished benchmark's time went, read from its own files (nothing is run again).

For a benchmark folder (default `runs/quick`, the README's main job) this prints:

- the stage table of `stages.json` (each stage's wall seconds in its last invocation, and over all
  invocations, with the pieces computed and reused);
- evolve: candidates trained / rejected, the sum of the candidates' training seconds and the wall seconds
  per generation (`generations.csv`), and the final re-evaluation (`evaluations.json`), for the evolution
  in `evolve/` or, in a suite with named evolutions and several searches (`evolve/<NAME>/search<K>/`),
  for each search and in total;
- train: the training-loop seconds of every network (`compare/runs/*/seed*/metrics.json`);
- attack: per network the attack and diagnostics seconds (`evaluation.json`), and the attack seconds per
  attack family summed over networks and budgets (the `seconds` column of `evaluation.csv`).

The sums are CPU-task seconds: with `--backend auto` on a 2-core CPU two one-thread workers run pieces side
by side, so a stage's wall time is about half its pieces' sum (the ratio is printed). The transfer
diagnostic (run once per seed after the attacks) is not timed in the files: it is the attack stage's wall
time not covered by its pieces.

    .venv/bin/python evaluations/perf/quick_profile.py --dir runs/quick
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from collections import defaultdict
from pathlib import Path


def _json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _csv(path: Path) -> list[dict]:
    try:
        with path.open() as f:
            return list(csv.DictReader(f))
    except OSError:
        return []


def _family(attack: str) -> str:
    return attack.split(":")[0]


def _evolution(folder: Path) -> dict:
    """One evolution run directory's candidates, generations and re-evaluation."""
    evo = _json(folder / "evaluations.json") or {}
    cands = evo.get("candidates", [])
    gens = _csv(folder / "generations.csv")
    reevals = evo.get("reevaluations", [])
    return {
        "candidates": len(cands),
        "trained": sum(c.get("status") == "trained" for c in cands),
        "rejected": sum(c.get("status") == "rejected" for c in cands),
        "candidate_seconds": sum(c.get("seconds") or 0.0 for c in cands),
        "generation_wall_seconds": [float(g["seconds"]) for g in gens if g.get("seconds")],
        "reevaluations": len(reevals),
        "reevaluation_seconds": sum((r.get("seconds") or 0.0) for r in reevals if isinstance(r, dict)),
    }


def profile(root: Path) -> dict:
    stages = (_json(root / "stages.json") or {}).get("stages", {})
    out: dict = {"dir": str(root), "stages": stages}

    searches = {}
    for path in sorted((root / "evolve").rglob("evaluations.json")):
        searches[str(path.parent.relative_to(root / "evolve")) or "."] = _evolution(path.parent)
    if len(searches) == 1:
        out["evolve"] = next(iter(searches.values()))
    else:
        out["evolve"] = {
            key: sum(s[key] for s in searches.values())
            for key in (
                "candidates",
                "trained",
                "rejected",
                "candidate_seconds",
                "reevaluations",
                "reevaluation_seconds",
            )
        }
        out["evolve"]["generation_wall_seconds"] = [g for s in searches.values() for g in s["generation_wall_seconds"]]
        out["evolve"]["searches"] = searches

    runs = sorted((root / "compare" / "runs").glob("*/seed*"))
    train, attack, diag, per_family, per_eps = [], [], [], defaultdict(float), defaultdict(float)
    pieces: dict[str, float] = {}
    for run in runs:
        m = _json(run / "metrics.json") or {}
        if m.get("seconds") is not None:
            train.append((run, float(m["seconds"]), m.get("samples_per_second")))
        e = _json(run / "evaluation.json") or {}
        if e.get("attack_seconds") is not None:
            attack.append(float(e["attack_seconds"]))
            diag.append(float(e.get("diagnostics_seconds") or 0.0))
            pieces[f"{run.parent.name}/{run.name}"] = float(e.get("seconds") or attack[-1] + diag[-1])
        for row in _csv(run / "evaluation.csv"):
            # Every attack's ε = 0 row repeats the clean pass's seconds: counted once, as "clean".
            if row.get("attack") != "clean" and float(row.get("eps") or 0) == 0:
                continue
            if row.get("seconds"):
                per_family[_family(row["attack"])] += float(row["seconds"])
                per_eps[(_family(row["attack"]), row["eps"])] += float(row["seconds"])
    out["train"] = {
        "networks": len(train),
        "seconds": sum(s for _, s, _ in train),
        "median_samples_per_s": statistics.median(r for _, _, r in train if r) if train else None,
    }
    out["attack"] = {
        "networks": len(attack),
        "attack_seconds": sum(attack),
        "diagnostics_seconds": sum(diag),
        "per_family_seconds": dict(sorted(per_family.items(), key=lambda kv: -kv[1])),
        "per_family_eps_seconds": {f"{f}@{e}": s for (f, e), s in sorted(per_eps.items(), key=lambda kv: -kv[1])},
        # Each network's evaluation (attacks and diagnostics; the transfer crafting of the baseline's pieces
        # is not in it): how uneven the pieces are, which sets how well workers can share them.
        "piece_seconds": dict(sorted(pieces.items(), key=lambda kv: -kv[1])),
    }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", default="runs/quick")
    p.add_argument("--out", default=None, help="also write the profile as JSON here")
    args = p.parse_args()
    if not (Path(args.dir) / "stages.json").is_file():
        p.exit(
            2,
            f"quick_profile.py: error: --dir {args.dir} is not a benchmark folder (no stages.json); "
            "give a finished run\n",
        )
    if not any((Path(args.dir) / "compare" / "runs").glob("*/seed*/evaluation.json")):
        p.exit(
            2,
            f"quick_profile.py: error: --dir {args.dir} has no compare/runs/*/seed*/evaluation.json (a published "
            "report folder keeps no per-network files); give the benchmark's own folder\n",
        )
    prof = profile(Path(args.dir))

    print(f"{args.dir}: stages (wall seconds; last invocation / all invocations; pieces computed, reused)")
    for name, s in prof["stages"].items():
        pieces = s.get("pieces") or {}
        print(
            f"  {name:8s} {s.get('last_seconds') or 0:8.1f} {s.get('total_seconds') or 0:8.1f}  "
            f"{s.get('status')}, {pieces.get('done', '-')} computed, {pieces.get('reused', '-')} reused"
        )
    ev = prof["evolve"]
    gw = ev["generation_wall_seconds"]
    for name, s in ev.get("searches", {}).items():
        print(
            f"  evolve/{name}: {s['candidates']} candidates ({s['trained']} trained), "
            f"{s['candidate_seconds']:.0f} s of candidate training, generations' wall "
            f"{sum(s['generation_wall_seconds']):.0f} s, "
            f"re-evaluation {s['reevaluations']} runs {s['reevaluation_seconds']:.0f} s"
        )
    walls = (  # many searches: the sum, not every generation
        f"{len(gw)} generations' wall {sum(gw):.0f} s"
        if len(gw) > 12
        else f"generations' wall {', '.join(f'{g:.0f}' for g in gw)} s (sum {sum(gw):.0f})"
    )
    print(
        f"evolve: {ev['candidates']} candidates ({ev['trained']} trained, {ev['rejected']} rejected by the "
        f"invariant), {ev['candidate_seconds']:.0f} s of candidate training; {walls}; re-evaluation "
        f"{ev['reevaluations']} runs, {ev['reevaluation_seconds']:.0f} s"
    )
    tr = prof["train"]
    print(
        f"train: {tr['networks']} networks, {tr['seconds']:.0f} s of training loops "
        f"(median {tr['median_samples_per_s'] or 0:,.0f} samples/s)"
    )
    at = prof["attack"]
    total = at["attack_seconds"] + at["diagnostics_seconds"]
    print(
        f"attack: {at['networks']} networks, {at['attack_seconds']:.0f} s of attacks + "
        f"{at['diagnostics_seconds']:.0f} s of diagnostics = {total:.0f} s of pieces"
    )
    fam_total = sum(at["per_family_seconds"].values()) or 1.0
    for fam, s in at["per_family_seconds"].items():
        print(f"  {fam:10s} {s:8.1f} s  {100 * s / fam_total:5.1f}% of the attacks")
    ps = at["piece_seconds"]
    if ps:
        longest = next(iter(ps))
        print(
            f"  per network (attacks and diagnostics): {min(ps.values()):.0f} to {ps[longest]:.0f} s, median "
            f"{statistics.median(ps.values()):.0f} s; the longest, {longest}, is {ps[longest] / sum(ps.values()):.0%} "
            "of all"
        )
    wall = (prof["stages"].get("attack") or {}).get("last_seconds")
    if wall:
        print(f"  attack stage wall {wall:.0f} s; pieces / wall = {total / wall:.2f} (parallel workers)")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(prof, indent=2, default=str))


if __name__ == "__main__":
    main()
