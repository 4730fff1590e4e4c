"""`build_report(DIR)`: report.md and a self-contained report.html from a benchmark directory's files.

Everything in the report is computed from the files listed in `robust_glo.reporting.inputs`; the
statistics are `robust_glo.robustness.summarize`'s (bootstrap over seeds and test images, p-values
adjusted for the comparisons shown), written next to the report as summary.csv.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from robust_glo.reporting import evidence as E
from robust_glo.reporting import figures as F
from robust_glo.reporting import tables as T
from robust_glo.reporting.inputs import EvolutionInputs, ReportInputs, copy_inputs, load_inputs
from robust_glo.reporting.render import Bullets, Code, Document, Image, Paragraph, Section, Table, to_html, to_markdown
from robust_glo.reporting.verdict import build_verdict
from robust_glo.robustness.attacks import spec_of_label
from robust_glo.robustness.statistics import INTERVAL_BOOTSTRAP
from robust_glo.utils import atomic_write_text

FIGURES = "figures"
SUMMARY = "summary.csv"
DOCS = Path(__file__).resolve().parents[2] / "docs"  # the project's documentation, in a source checkout


def docs_ref(page: str, report_dir: Path) -> str:
    """A Markdown link from a report inside the project's repository to a page of its docs/ (relative, so
    that it works in any clone); elsewhere the page's name in words."""
    import os

    target, repo, here = DOCS / page, DOCS.parent, report_dir.resolve()
    if not target.is_file() or not here.is_relative_to(repo):
        return f"robust-glo's docs/{page}"
    return f"[docs/{page}]({Path(os.path.relpath(target, here)).as_posix()})"


# Captions of the learning-rule figures written by `robust_glo.analysis.plot_analyses`.
ANALYSIS_CAPTIONS = {
    "learning_rule": "Loss value and target-logit gradient −∂L/∂z_t against the target probability p (uniform "
    "outputs at p = 1/n; each loss's effective target p* marked).",
    "pull_push": "The target-logit gradient split into the pull toward the target (its own term) and the push "
    "from the other classes.",
    "taylorglo_f": "TaylorGLO f(x, y): contours over [0, 1]², and the curves f(0, y), f(1, y) that training uses.",
}


@dataclass
class ReportPaths:
    markdown: Path
    html: Path
    summary: Path
    figures: list[Path]


def _settings(inputs: ReportInputs) -> T.StatsSettings:
    suite = inputs.suite or {}
    losses = inputs.losses
    baseline = suite.get("baseline")
    baseline = baseline if baseline in losses else ("ce" if "ce" in losses else losses[0])
    return T.StatsSettings(
        baseline=baseline,
        alpha=float(suite.get("alpha", 0.05)),
        correction=str(suite.get("correction", "holm")),
        n_boot=int(suite.get("bootstrap", 10_000)),
        boot_seed=int(suite.get("bootstrap_seed", 0)),
    )


def build_report(root: str | Path, out_dir: str | Path | None = None) -> ReportPaths:
    """Build report.md, report.html, summary.csv and figures/*.png in `root`.

    With `out_dir` (another folder), the report's input files are first copied there (no weights, no run
    directories), and the report is built there: a small, self-sufficient folder to publish, which
    `build_report(out_dir)` rebuilds.
    """
    if out_dir is not None and Path(out_dir).resolve() != Path(root).resolve():
        copy_inputs(root, out_dir)
        root = out_dir
    inputs = load_inputs(root)
    out = inputs.root
    settings = _settings(inputs)
    baseline = settings.baseline
    summary = T.summary_stats(inputs, settings)
    summary_path = out / SUMMARY
    atomic_write_text(summary_path, summary.to_csv(index=False))

    labels = {s: inputs.label(s) for s in inputs.losses}
    figs: dict[str, Path] = {}
    figs["robust_accuracy"] = F.save_png(
        F.robust_accuracy_figure(
            summary, labels, inputs.losses, inputs.results, baseline, band=T.interval_kind(summary)
        ),
        out / FIGURES / "robust_accuracy.png",
    )
    if T.attack_order(inputs.results):
        figs["per_seed"] = F.save_png(
            F.per_seed_figure(inputs.results, labels, inputs.losses), out / FIGURES / "per_seed.png"
        )
    for evo in inputs.evolutions:
        if not evo.history.empty:
            stem = f"evolution-{evo.name}" if evo.name else "evolution"
            figs[stem] = F.save_png(F.evolution_figure(evo.history), out / FIGURES / f"{stem}.png")
    if inputs.analysis:
        figs["effective_target"] = F.save_png(
            F.effective_target_figure(inputs.analysis, inputs.labels), out / FIGURES / "effective_target.png"
        )

    doc = _document(inputs, summary, settings, figs)
    md_path = atomic_write_text(out / "report.md", to_markdown(doc, out))
    html_path = atomic_write_text(out / "report.html", to_html(doc))
    return ReportPaths(md_path, html_path, summary_path, list(figs.values()))


# ------------------------------------------------------------------------------------------ sections


def _document(
    inputs: ReportInputs, summary: pd.DataFrame, settings: T.StatsSettings, figs: dict[str, Path]
) -> Document:
    suite = inputs.suite or {}
    title = suite.get("title") or f"robust-glo benchmark: {suite.get('name') or inputs.root.name}"
    res = inputs.results
    dataset = ", ".join(map(str, dict.fromkeys(res["dataset"]))) if "dataset" in res else suite.get("dataset", "?")
    model = ", ".join(map(str, dict.fromkeys(res["model"]))) if "model" in res else suite.get("model") or "?"
    subtitle = (
        f"{suite.get('description', '').strip()} Dataset {dataset}, model {model}; "
        f"{len(inputs.losses)} losses × {len(T.seeds_list(inputs))} seeds; attacks "
        f"{T.attack_list(T.attack_order(res))}."
    ).strip()
    doc = Document(title=title, subtitle=subtitle)
    doc.sections.append(_verdict_section(inputs, summary, settings))
    doc.sections.append(_summary_section(inputs, summary, settings))
    doc.sections.append(_curves_section(inputs, figs, summary))
    doc.sections.append(_statistics_section(inputs, summary, settings))
    for evo in inputs.evolutions:
        stem = f"evolution-{evo.name}" if evo.name else "evolution"
        if stem in figs:
            doc.sections.append(_evolution_section(inputs, evo, figs[stem]))
    if inputs.analysis:
        doc.sections.append(_analysis_section(inputs, figs))
    doc.sections.append(_diagnostics_section(inputs))
    doc.sections.append(_reliability_section(inputs))
    doc.sections.append(_reproducibility_section(inputs))
    return doc


def _summary_section(inputs: ReportInputs, summary: pd.DataFrame, settings: T.StatsSettings) -> Section:
    base = inputs.label(settings.baseline)
    n_seeds = sorted({int(v) for v in summary["n_seeds"]})
    shown = T.family(summary)
    n_secondary = int((summary["family"] == "secondary").sum()) if "family" in summary.columns else 0
    families = (
        f"over the {len(shown)} comparisons of the primary family (clean accuracy and the worst case per "
        "budget)" + (f"; per-attack cells are corrected separately over {n_secondary}" if n_secondary else "")
    )
    section = Section("Summary", anchor="summary")
    section.add(
        Table(
            T.headline_table(inputs, summary),
            nowrap=True,
            caption=f"Clean and robust accuracy (%) per loss: mean over seeds ({_join(n_seeds)} per cell) and "
            f"{T.interval_kind(summary)}. `↑*` / `↓*`: significantly above / below {base} after "
            f"{settings.correction_name} correction {families} (adjusted p < {settings.alpha:g}, "
            "two-sided); `⚠`: a seed's evaluation failed a reliability check.",
        )
    )
    section.add(
        Table(
            T.difference_table(inputs, summary),
            nowrap=True,
            caption=f"Difference to {base} in percentage points, with its 95% interval (bootstrap, paired on "
            f"the test images and the seeds) and the p-value adjusted by {settings.correction_name} "
            f"{families} (`*`: p < {settings.alpha:g}; `p≤`: the p is at the smallest value the data "
            "resolve; no p: the attack's outcomes are the worst case's, as for the last attack of a cascade "
            "or the only attack at a budget, so it is not a comparison of its own). See "
            "[Statistics](#statistics) for the method.",
        )
    )
    section.add(Paragraph("**What this does and does not show.**"), Bullets(_caveats(inputs, summary, settings)))
    return section


def _join(values: list[Any]) -> str:
    return ", ".join(map(str, values))


def _training_budget(inputs: ReportInputs) -> str:
    train = (inputs.suite or {}).get("train") or {}
    if train.get("steps"):
        return f"{train['steps']} SGD steps"
    if train.get("epochs"):
        return f"{train['epochs']:g} epochs"
    return f"the {train.get('preset', 'default')} recipe"


def _verdict_section(inputs: ReportInputs, summary: pd.DataFrame, settings: T.StatsSettings) -> Section:
    res = T.measured(inputs.results)
    seeds = sorted({int(s) for s in res["seed"]})
    n_images = sorted({int(v) for v in res["n"]}) if "n" in res else []
    dataset = ", ".join(map(str, dict.fromkeys(res["dataset"]))) if "dataset" in res else "this dataset"
    budget = f"{_training_budget(inputs)}, {len(seeds)} seeds, {_join(n_images) or 'all'} test images"
    labels = {s: inputs.label(s) for s in inputs.losses}
    coverage = E.report_coverage(inputs)
    verdict = build_verdict(
        summary,
        labels,
        settings.baseline,
        dataset=dataset,
        budget=budget,
        correction=settings.correction_name.split(" (")[0],
        coverage=coverage,
        diagnostics=inputs.diagnostics,
    )
    section = Section("Verdict", anchor="verdict")
    section.add(Paragraph(f"**{verdict.answer}**"))
    base = inputs.label(settings.baseline)
    glance = E.verdict_table(verdict.claims, verdict.clean)
    if not glance.empty:
        section.add(
            Table(
                glance,
                f"The verdict at a glance: difference to {base} in percentage points with its 95% interval, "
                "per loss and budget (the worst case over the attacks there) and for clean accuracy; `↑` / `↓`: "
                f"significantly more / less robust (or accurate) than {base} after {settings.correction_name} "
                "correction over the primary family; a significant robustness claim is `counted` or `not "
                "counted` (with why: the AutoAttack ensemble incomplete there, a diagnostic failed, or the networks "
                "not diagnosed). The last two rows name the attacks behind each budget's worst case and "
                "what it lacks of the standard AutoAttack ensemble.",
            )
        )
    section.add(
        Paragraph(
            "Written by the report code from the statistics below. A claim counts as evidence only where the "
            "worst case at its budget includes the standard AutoAttack ensemble (APGD-CE, APGD-T, FAB-T, Square "
            "with 5,000 queries) and neither network failed a diagnostic there "
            f"({docs_ref('attacks.md', inputs.root)}); differences are in percentage points with their 95% "
            "interval over seeds and test images, significance after the correction over the primary family "
            f"({docs_ref('statistics.md', inputs.root)})."
        )
    )
    section.add(Bullets(verdict.bullets))
    table = E.claims_table(verdict.claims)
    if not table.empty:
        section.add(
            Table(
                table,
                f"Every claim against {base} in detail: per loss and budget, the worst-case difference, the "
                "attacks that stand behind it, whether they include the AutoAttack ensemble, the diagnostics "
                "failed (by the loss, or by the baseline) and whether the answer above counts it.",
            )
        )
    return section


def _diagnostics_section(inputs: ReportInputs) -> Section:
    section = Section("Diagnostics", anchor="diagnostics")
    budgets = sorted(E.report_coverage(inputs))
    table = E.diagnostics_table(inputs, budgets)
    if table.empty:
        section.add(
            Paragraph(
                "Not run: these results record no diagnostics (transfer, more effort, unbounded budget, APGD-T "
                "against APGD-CE, gradients), so no claim here has passed them; re-run the attack stage to "
                "compute them."
            )
        )
        return section
    section.add(
        Paragraph(
            "Could the attacks have been fooled? Each diagnostic measures one way they can be "
            f"({docs_ref('attacks.md', inputs.root)}): `transfer` is the share of inputs the white-box attacks "
            "left standing that adversarial examples crafted on the baseline network of the same seed broke; "
            "`more_effort` the share of a subsample that a stronger attack (5x the iterations of the strongest "
            "one that ran; 5 restarts, or APGD-T's 9 targets) broke beyond the worst case; `unbounded` the "
            "accuracy left at a budget where any image can be turned mid-gray; `targeted_vs_ce` the share APGD-T "
            "broke that APGD-CE and the attacks before it left standing (informational); `gradients` the share "
            "of correct inputs with an all-zero, NaN or infinite input gradient. "
            f"Thresholds: {E.thresholds_text(inputs)}. A claim counts only where every diagnostic but "
            "`targeted_vs_ce` was judged and passed on every seed of the loss and of the baseline at its budget; "
            "a diagnostic that was not run blocks it too."
        )
    )
    section.add(
        Table(
            table,
            "Per loss and budget: the diagnostic's figure in % (mean over seeds); `✗ k/S`: failed in k of S "
            "seeds; `not run`: it could not be judged there (the detail is in diagnostics.csv).",
        )
    )
    return section


def _caveats(inputs: ReportInputs, summary: pd.DataFrame, settings: T.StatsSettings) -> list[str]:
    res = inputs.results
    seeds = T.seeds_list(inputs)
    items = []
    res = T.measured(res)
    n_images = sorted({int(v) for v in res["n"]}) if "n" in res else []
    budget = _training_budget(inputs)
    items.append(
        f"Each network was trained for {budget} ({len(seeds)} seeds: {_join(seeds)}) and attacked on "
        f"{_join(n_images) or 'all'} test images. The conclusions hold for this budget: a longer run can "
        f"change them."
    )
    attacks = T.attack_order(res)
    params = (
        res.sort_values("eps").drop_duplicates("attack", keep="last").set_index("attack")["params"].to_dict()
        if "params" in res.columns
        else {}
    )
    names = T.attack_names(attacks)
    attack_text = "; ".join(
        f"{names[a]} (`{a}`" + (f": {_budget(params.get(a))})" if _budget(params.get(a)) else ")") for a in attacks
    )
    items.append(
        f"Attacks run: {attack_text or 'none'}, L∞ unless marked L2 (then ε is an L2 radius), with "
        f"cross-entropy (or margin, DLR) on the logits, "
        f"never the network's training loss. Robust accuracy under these attacks is an upper bound on "
        f"true robustness ({docs_ref('attacks.md', inputs.root)})."
    )
    coverage = E.report_coverage(inputs)
    unverified = [
        f"{'L2 radius' if norm == 'l2' else 'ε ='} {eps:g} (missing {', '.join(cov.missing)})"
        for (norm, eps), cov in sorted(coverage.items(), key=lambda kv: (kv[0][0] != "linf", float(kv[0][1])))
        if not cov.verified
    ]
    if unverified:
        items.append(
            "Not AutoAttack-verified (the worst case there lacks part of the standard ensemble): "
            + "; ".join(unverified)
            + ". A loss that looks more robust there has not been tested against the full ensemble, and such "
            "an advantage is what gradient masking produces: the verdict states those claims but does not count them."
        )
    partial: dict[tuple[str, tuple[float, ...], tuple[float, ...]], list[str]] = {}
    cascades = []
    for a in attacks:
        spec = spec_of_label(a)
        if spec is None:
            continue
        same = res[res["norm"] == spec.threat.display] if "norm" in res else res
        budgets = sorted(e for e in same["eps"].astype(float).unique() if e > 0)
        where = sorted(e for e in res.loc[res["attack"] == a, "eps"].astype(float).unique() if e > 0)
        missing = [e for e in budgets if e not in where]
        if missing and where:
            partial.setdefault((spec.threat.budget_word, tuple(where), tuple(missing)), []).append(names[a])
        if spec.cascade:
            cascades.append(names[a])
    for (word, where, missing), which in partial.items():
        them, curves = ("it", "its curve has") if len(which) == 1 else ("them", "their curves have")
        items.append(
            f"{', '.join(which)} ran only at {word} {', '.join(f'{e:g}' for e in where)}: at {word} "
            f"{', '.join(f'{e:g}' for e in missing)} the worst case does not include {them}, and {curves} no "
            "points there."
        )
    if cascades:
        items.append(
            f"{', '.join(cascades)} ran as a cascade, each on the inputs the attacks before it left correct: "
            "the column of each is the per-input worst case of those attacks and itself."
        )
    shown = T.family(summary)
    raw = int((shown["p_value"] < settings.alpha).sum())
    adjusted = int(shown["significant"].astype(bool).sum())
    secondary = summary[summary["family"] == "secondary"] if "family" in summary.columns else summary.iloc[:0]
    per_attack = (
        f" Per attack, corrected separately: {int(secondary['significant'].astype(bool).sum())} of {len(secondary)}."
        if len(secondary)
        else ""
    )
    items.append(
        f"{adjusted} of the {len(shown)} comparisons with {inputs.label(settings.baseline)} in the primary family "
        f"(clean accuracy and the worst case per budget) are significant after {settings.correction_name} "
        f"correction (adjusted p < {settings.alpha:g}); {raw} would be at raw p < {settings.alpha:g}."
        f"{per_attack} The others show no evidence of a difference at this sample size, which is not evidence "
        "of equality."
    )
    fewest = int(summary["n_seeds"].min()) if len(summary) else 0
    if 1 < fewest < 10 and (summary["interval"] == INTERVAL_BOOTSTRAP).any():
        items.append(
            f"With {fewest} seeds per loss, the seed-to-seed variation is estimated from {fewest} values (the "
            f"bootstrap corrects resampling's (S − 1)/S shrinkage, but not the uncertainty of so few seeds); more "
            f"seeds would make the intervals more trustworthy."
        )
    diverged = T.not_measured(inputs)
    if diverged:
        items.append(
            f"{len(diverged)} training run(s) did not finish and are missing from the statistics: "
            + ", ".join(f"{inputs.label(loss)} seed {s} ({st})" for loss, s, st in diverged)
            + "."
        )
    bad = T.unreliable_evaluations(inputs)
    items.append(
        f"{len(bad)} evaluation(s) (loss × seed) failed a reliability check"
        + (": " + ", ".join(f"{inputs.label(loss)} seed {s}" for loss, s in bad) if bad else "")
        + "."
    )
    return items


def _budget(params: Any) -> str:
    """A short text of an attack's recorded budget (the `params` column, JSON)."""
    if not isinstance(params, str) or not params.strip():
        return ""
    try:
        data = json.loads(params)
    except ValueError:
        return params
    if not isinstance(data, dict):
        return ""
    # The step sizes scale with eps (their rule is listed instead); the rest is the attack's budget.
    skip = ("eps", "norm", "name", "attack", "alpha", "step_size")
    return ", ".join(f"{k} {v}" for k, v in data.items() if k not in skip and not isinstance(v, (dict, list)))


def _curves_section(inputs: ReportInputs, figs: dict[str, Path], summary: pd.DataFrame) -> Section:
    section = Section("Robust accuracy against ε", anchor="robust-accuracy")
    section.add(
        Image(
            figs["robust_accuracy"],
            "Robust accuracy against the budget ε (L∞, or the L2 radius for the attacks marked L2, each norm "
            "in its own panels), one panel per attack, and per threat model the per-sample worst case over "
            f"its attacks. Lines: mean over seeds; bands: {T.interval_kind(summary)}. A line stops where its "
            "attack did not run (an attack that starts at a larger ε has no points below it); a point with no "
            "line to it shows its interval as an error bar. Each loss keeps its colour, marker and line style "
            "in every figure (a colour-blind-safe palette).",
            alt="robust accuracy against eps",
        )
    )
    if "per_seed" in figs:
        section.add(
            Image(
                figs["per_seed"],
                "The individual networks behind the means: one dot per seed, one panel per attack, at the budgets "
                "it ran at.",
                alt="per-seed accuracy",
            )
        )
    return section


def _statistics_section(inputs: ReportInputs, summary: pd.DataFrame, settings: T.StatsSettings) -> Section:
    from robust_glo.robustness.statistics import P_FLOOR

    section = Section("Statistics", anchor="statistics")
    base = inputs.label(settings.baseline)
    section.add(
        Paragraph(
            "How the numbers are computed. An accuracy varies with the network's training seed and with the test "
            "images it is measured on; every network here is attacked on the same test images, and seed s gives "
            "every loss the same initial weights and batch order. The intervals come from a bootstrap with "
            f"{settings.n_boot:,} replicates (seed {settings.boot_seed}) that resamples both: each replicate draws "
            "the test images once and the seeds once (with replacement), shared by every network and every loss "
            f"with the same seeds, so that differences to {base} are paired on images and on seeds (the "
            "resampled seeds' spread is scaled by √(S/(S−1)) so few seeds are not under-stated). The 95% "
            "interval is the 2.5–97.5 percentile range of the replicates; where a loss got no image right on any "
            "seed (or every image on every seed) it is widened to at least the exact Clopper–Pearson interval "
            "over the N test images (up to about 3.7/N above 0%), not a point. The p-value of a difference is "
            "the normal approximation 2Φ(−|Δ|/SE), with Δ the observed difference and SE the standard "
            "deviation of its bootstrap replicates, so it resolves p-values far below the corrected "
            "thresholds; where the data cannot resolve it (no spread at all, or a p beyond the floor of "
            f"{P_FLOOR:.0e} or of the exact sign test on the images that differ) it is shown as `p≤` that floor. "
            "The percentile p (twice the share of replicates beyond zero) is listed for reference. The p-values "
            f"are adjusted ({settings.correction_name}, statsmodels' `multipletests`) within two families "
            "separately: the primary family (clean accuracy and the per-input worst case per threat model and "
            "budget, the comparisons the verdict rests on) and the secondary family (each attack at each "
            "budget, except an attack whose outcomes are those of the worst case); only adjusted p-values mark "
            "significance. Welch's t-test over seeds and a paired t-test over images are listed for reference; "
            "neither decides (the first ignores the images, the second the seeds). Details: "
            f"{docs_ref('statistics.md', inputs.root)}."
        )
    )
    section.add(
        Table(
            T.detail_table(inputs, summary),
            nowrap=True,
            caption="Every loss × attack × ε cell (from summary.csv): accuracy in %, its interval, the difference "
            f"to {base} in points with its interval, raw p (and the test that gave it), its family, p adjusted "
            f"by {settings.correction_name} within that family, and the reference p-values (percentile "
            "bootstrap, Welch over seeds, paired over images).",
        )
    )
    section.add(
        Table(T.per_seed_table(inputs), "Clean accuracy (%) of every trained network on the attacked test images.")
    )
    training = T.training_table(inputs)
    if not training.empty:
        section.add(Table(training, "Every training run (from training.csv); a diverged run has no network to attack."))
    return section


def _evolution_section(inputs: ReportInputs, evo: EvolutionInputs, figure: Path) -> Section:
    history = evo.history
    title = f"Evolution: {evo.name}" if evo.name else "Evolution"
    section = Section(title, anchor=f"evolution-{evo.name}" if evo.name else "evolution")
    gens = T.evolution_generations(history)
    rejected = int(gens["rejected"].sum())
    total = int(gens["candidates"].sum())
    suite = inputs.suite or {}
    config = (suite.get("evolutions") or {"": suite.get("evolve") or {}}).get(evo.name) or {}
    fitness = config.get("fitness", "clean")
    meaning = (
        "1 − validation accuracy"
        if fitness == "clean"
        else f"`{fitness}`: 1 − ((1 − w) · clean + w · robust validation accuracy)"
    )
    by_steps = bool(gens["steps"].notna().all() and (gens["steps"] > 0).any())
    x_axis = "training steps spent" if by_steps else "generation (this history does not record steps)"
    halving = config.get("fidelity") == "halving"
    pruned, collapsed = int(gens["pruned"].sum()), int(gens["collapsed"].sum())
    rungs_text = (
        f" Successive halving (eta {config.get('eta', 3)}, {config.get('rungs', 3)} rungs) stopped {pruned} "
        f"candidates at a lower rung and {collapsed} as collapsed (chance accuracy or a loss that did not "
        f"move); {int(gens['steps'].sum()):,} training steps were spent in all."
        if halving
        else ""
    )
    section.add(
        Paragraph(
            f"CMA-ES evaluated {total} candidates over {len(gens)} generations; the invariant "
            f"rejected {rejected} ({rejected / max(total, 1):.0%}) without training them. Fitness is "
            f"{meaning} after a short training run; candidates not trained to the end rank "
            f"after every trained one ({docs_ref('method.md', inputs.root)}).{rungs_text}"
        )
    )
    section.add(
        Image(
            figure,
            "Left: best and median fitness of the candidates trained to the full budget, per generation, "
            f"and the best so far, against the {x_axis}. Right: the share of each generation "
            "that was not trained to the end.",
            alt="evolution progress",
        )
    )
    section.add(Table(T.evolution_table(history), f"Per generation (from {evo.folder}/history.csv)."))
    if evo.reevaluation is not None and not evo.reevaluation.empty:
        section.add(
            Table(
                T.reevaluation_table(evo.reevaluation),
                f"The best candidates of the search, re-trained on fresh seeds ({evo.folder}/reevaluation.csv); "
                "the lowest mean fitness is the evolved loss.",
            )
        )
    best = evo.best_loss
    if best and best.get("theta"):
        theta = ", ".join(f"{float(t):.4f}" for t in best["theta"])
        extra = {
            k: v
            for k, v in best.items()
            if k not in ("kind", "theta") and v is not None and not isinstance(v, (dict, list))
        }
        text = f"The evolved loss ({evo.folder}/best_loss.json): θ = [{theta}]"
        if extra:
            text += "; " + ", ".join(f"{k} {_short(v)}" for k, v in extra.items())
        section.add(Paragraph(text + "."))
    return section


def _short(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _analysis_section(inputs: ReportInputs, figs: dict[str, Path]) -> Section:
    section = Section("Loss analysis", anchor="loss-analysis")
    section.add(
        Paragraph(
            f"The learning rule of each loss on the logits ({docs_ref('method.md', inputs.root)}). "
            "The effective target p* is where the target-logit gradient vanishes with the other classes equal: "
            "training comes to rest there instead of pursuing p → 1. p* < 1 acts as implicit label smoothing with the "
            "α shown; cross-entropy has none."
        )
    )
    section.add(Table(T.analysis_table(inputs), "From analysis/analysis.json."))
    section.add(Image(figs["effective_target"], "Effective target p* per loss.", alt="effective targets"))
    taylor = [a for a in inputs.analysis if a.get("theta") is not None]
    if taylor:
        section.add(
            Paragraph(
                "In the learning-rule figures below, TaylorGLO losses with long specs are labelled "
                "`taylorglo #k` in the order of the table: "
                + "; ".join(f"#{k} = {inputs.label(str(a['spec']))}" for k, a in enumerate(taylor, 1))
            )
        )
    for path in inputs.analysis_figures:
        section.add(Image(path, ANALYSIS_CAPTIONS.get(path.stem, path.stem.replace("_", " ")), alt=path.stem))
    return section


def _reliability_section(inputs: ReportInputs) -> Section:
    section = Section("Reliability checks", anchor="reliability")
    summary = T.flags_summary(inputs)
    if summary.empty:
        section.add(Paragraph("No reliability checks were recorded with these results (no flags.csv)."))
        return section
    failed = int(summary["failed"].sum())
    not_run = summary[summary["not run"] > 0]
    verdict = "No check failed." if failed == 0 else f"{failed} check(s) failed."
    if not not_run.empty:
        verdict += (
            " Not run (these say nothing about the results): "
            + "; ".join(
                f"{r['check']} in {r['not run']} evaluation(s): {r['why not run']}" for r in not_run.to_dict("records")
            )
            + "."
        )
    elif failed == 0:
        verdict = "Every check ran and passed."
    section.add(
        Paragraph(
            "Every evaluation (one network under every attack and ε) is checked for signs that the "
            "attacks under-estimate the attacker or that the evaluation itself went wrong "
            f"({docs_ref('attacks.md', inputs.root)}). A failed check marks that network's results "
            "unreliable (⚠ in the "
            "summary). " + verdict
        )
    )
    section.add(Table(summary, "Checks across all evaluations (from flags.csv), with what each one means."))
    failures = T.flag_failures(inputs)
    if not failures.empty:
        section.add(Table(failures, "Failed checks in detail."))
    return section


def _reproducibility_section(inputs: ReportInputs) -> Section:
    section = Section("Reproducibility", anchor="reproducibility")
    suite = inputs.suite or {}
    env = inputs.environment or {}
    runs = (inputs.stages or {}).get("invocations") or [{}]
    last = runs[-1]
    ref = last.get("suite") or suite.get("ref") or suite.get("source") or suite.get("name", "SUITE")
    variant = last.get("variant") or suite.get("variant")
    cmd = (
        f"robust-glo benchmark {ref}"
        + (f" --variant {variant}" if variant else "")
        + f" --out {last.get('out') or inputs.root}"
    )
    section.add(
        Paragraph(
            f"Made with `{cmd}` ({len(runs)} invocation(s)); rebuild this report from the "
            f"results alone with `robust-glo report {inputs.root}`."
            + (f" Generated {env['created']}." if env.get("created") else "")
        )
    )
    if len(runs) > 1:
        section.add(
            Table(
                T.invocations_table(runs),
                "Every `benchmark` invocation on this folder. Finished pieces are reused across them "
                "(keyed by their full configuration), so a piece made by an earlier invocation, even one "
                "that ran a different suite file or was killed, is the piece this suite would make.",
            )
        )
    section.add(
        Paragraph(
            f"Seeds: training {_join(T.seeds_list(inputs))} (weights, batch order; one network per "
            f"seed and loss)"
            + (f"; attack seed {suite['attack_seed']}" if "attack_seed" in suite else "")
            + "".join(
                f"; evolution{' ' + n if n else ''} seed {o.get('seed', 0)}"
                for n, o in (suite.get("evolutions") or ({"": suite["evolve"]} if suite.get("evolve") else {})).items()
            )
            + "."
        )
    )
    stages = T.stages_table(inputs.stages, T.piece_seconds(inputs))
    if not stages.empty:
        load = ""
        if last.get("load_start") is not None and last.get("load_end") is not None:
            load = (
                f" The machine's 1-minute load average was {last['load_start']:g} at the start and "
                f"{last['load_end']:g} at the end of the last invocation, on {last.get('cpu_count', '?')} "
                f"CPU cores: a load above the core count means other processes shared the CPU and the "
                f"times are longer than on an idle machine."
            )
        section.add(
            Table(
                stages,
                "Wall time of each stage: the last `benchmark` invocation, and the total over all "
                "invocations (a resumed run reuses finished pieces; an invocation killed mid-stage records "
                "no time for that stage). The compute column adds up the seconds of the stage's pieces "
                "themselves (candidate trainings, trained networks, attack evaluations), wherever and "
                "whenever they ran: with k pieces in parallel, wall time is about 1/k of it." + load,
            )
        )
    if env.get("hardware"):
        section.add(Table(T.hardware_table(env), "Hardware."))
    if env.get("versions"):
        section.add(Table(T.versions_table(env), "Library versions."))
    if suite:
        shown = {k: v for k, v in suite.items() if v not in (None, [], {})}
        section.add(Paragraph("The resolved suite (suite.json):"), Code(_compact_json(shown), "json"))
    return section


def _compact_json(data: dict[str, Any]) -> str:
    """JSON with one top-level key per line (nested values on the same line)."""
    lines = [f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in data.items()]
    return "{\n" + ",\n".join(lines) + "\n}"
