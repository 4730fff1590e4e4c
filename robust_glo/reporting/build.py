"""`build_report(DIR)`: report.md and a self-contained report.html from a benchmark directory's files.

Everything in the report is computed from the files listed in `robust_glo.reporting.inputs`; the
statistics are `robust_glo.robustness.summarize`'s (bootstrap over seeds and test images, p-values
adjusted for the comparisons shown), written next to the report as summary.csv.
"""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robust_glo.reporting import evidence as E
from robust_glo.reporting import figures as F
from robust_glo.reporting import protocol as P
from robust_glo.reporting import tables as T
from robust_glo.reporting import verdict as V
from robust_glo.reporting.inputs import EvolutionInputs, ReportInputs, copy_inputs, load_inputs
from robust_glo.reporting.render import Bullets, Code, Document, Image, Paragraph, Section, Table, to_html, to_markdown
from robust_glo.reporting.verdict import build_verdict
from robust_glo.robustness.attacks import spec_of_label
from robust_glo.robustness.diagnostics import BLOCKING, BLOCKING_BASELINE
from robust_glo.robustness.statistics import INTERVAL_BOOTSTRAP, P_FLOOR, first_rejection_t, minimum_detectable
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


def build_report(root: str | Path, out_dir: str | Path | None = None, *, redraw: bool = True) -> ReportPaths:
    """Build report.md, report.html, summary.csv and figures/*.png in `root`.

    With `out_dir` (another folder), the report's input files are first copied there (no weights, no run
    directories), and the report is built there: a small, self-sufficient folder to publish, which
    `build_report(out_dir)` rebuilds. `redraw=False` keeps every figure already in the folder (the
    benchmark's second build, which only adds the report stage's own wall time to the text).
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

    def draw(make: Callable[[], Any], path: Path) -> Path:
        return path if not redraw and path.is_file() else F.save_png(make(), path)

    figs["robust_accuracy"] = draw(
        lambda: F.robust_accuracy_figure(
            summary,
            labels,
            inputs.losses,
            inputs.results,
            baseline,
            band=T.interval_kind(summary),
            verified={k: c.verified for k, c in E.report_coverage(inputs).items()},
        ),
        out / FIGURES / "robust_accuracy.png",
    )
    if T.attack_order(inputs.results):
        figs["per_seed"] = draw(
            lambda: F.per_seed_figure(inputs.results, labels, inputs.losses), out / FIGURES / "per_seed.png"
        )
    for evo in inputs.evolutions:
        if not evo.history.empty:
            stem = _evolution_stem(evo)
            seeds = {s.index: (s.config or {}).get("seed") for s in evo.searches}
            figs[stem] = draw(lambda h=evo.history, s=seeds: F.evolution_figure(h, s), out / FIGURES / f"{stem}.png")
            figs[f"{stem}-parameters"] = draw(
                lambda h=evo.history: F.search_space_figure(h, T.parameter_importance(h)),
                out / FIGURES / f"{stem}-parameters.png",
            )
    study = T.frontier_study(inputs, settings, summary)
    if study is not None and study.points:
        figs["frontier"] = draw(
            lambda: F.frontier_figure(study, summary, labels, inputs.losses, _budget_titles(inputs, study.budgets)),
            out / FIGURES / "frontier.png",
        )
    if inputs.analysis:
        figs["effective_target"] = draw(
            lambda: F.effective_target_figure(inputs.analysis, inputs.labels), out / FIGURES / "effective_target.png"
        )

    doc = _document(inputs, summary, settings, figs, study)
    md_path = atomic_write_text(out / "report.md", to_markdown(doc, out))
    html_path = atomic_write_text(out / "report.html", to_html(doc))
    return ReportPaths(md_path, html_path, summary_path, list(figs.values()))


# ------------------------------------------------------------------------------------------ sections


def _evolution_stem(evo: EvolutionInputs) -> str:
    return f"evolution-{evo.name}" if evo.name else "evolution"


def _document(
    inputs: ReportInputs,
    summary: pd.DataFrame,
    settings: T.StatsSettings,
    figs: dict[str, Path],
    study: T.FrontierStudy | None = None,
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
    # Read once, for the frontier section and for the verdict's sentences against label smoothing.
    readings = _frontier_readings(inputs, study, settings.baseline) if study is not None else None
    doc.sections.append(_verdict_section(inputs, summary, settings, study, readings))
    doc.sections.append(_summary_section(inputs, summary, settings))
    doc.sections.append(_curves_section(inputs, figs, summary))
    if study is not None:
        doc.sections.append(_frontier_section(inputs, settings, study, readings or [], figs.get("frontier")))
    paper = _paper_protocol_section(inputs, summary, settings)
    if paper is not None:
        doc.sections.append(paper)
    doc.sections.append(_statistics_section(inputs, summary, settings))
    for evo in inputs.evolutions:
        stem = _evolution_stem(evo)
        if stem in figs:
            doc.sections.append(_evolution_section(inputs, evo, figs))
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
            "two-sided): a statistical difference under the attacks of that column, not a counted robustness "
            "claim (the verdict counts one only at an AutoAttack-verified budget with every blocking diagnostic "
            "passed); "
            "`⚠`: a seed's evaluation failed a reliability check.",
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


def _verdict_section(
    inputs: ReportInputs,
    summary: pd.DataFrame,
    settings: T.StatsSettings,
    study: T.FrontierStudy | None = None,
    readings: list[FrontierReading] | None = None,
) -> Section:
    """The verdict: the answer against the baseline, its table and prose and, where the study has
    label-smoothing arms (`study`), one sentence per worst-case budget against the label-smoothing frontier
    (`readings`, the frontier section's own)."""
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
    correction = settings.correction_name.split(" (")[0]
    if study is not None:
        # The study's question is against label smoothing, so its answer leads; then the answer against ce.
        section.add(Paragraph(f"**{_smoothing_answer(inputs, study, readings)}**"))
        section.add(Bullets(_smoothing_sentences(inputs, summary, settings.baseline, study, readings, correction)))
        why = _smoothing_why(inputs, study, readings)
        if why:
            section.add(Paragraph(why))
    section.add(Paragraph(f"**{verdict.answer}**"))
    floor = _floor_sentences(inputs, summary, settings.baseline, coverage, study)
    if floor:
        section.add(Paragraph(" ".join(floor)))
    power = _power_sentence(summary, correction, settings.alpha)
    if power:
        section.add(Paragraph(power))
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
            "with 5,000 queries) and neither network failed a blocking diagnostic there "
            f'({docs_ref("attacks.md", inputs.root)}). "AutoAttack-verified" means only that: the worst case '
            "includes the full ensemble, so robust accuracy is an empirical upper bound under a strong standard "
            "attack, not a certificate. Differences are in percentage points with their 95% "
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


FLOOR = 0.05  # robust accuracy below which a budget can hardly show a difference


def _smoothing_answer(inputs: ReportInputs, study: T.FrontierStudy, readings: list[FrontierReading] | None) -> str:
    """The verdict's headline against label smoothing, one short sentence summarising the per-budget
    sentences: which losses are shown above the frontier (and counted) at which AutoAttack-verified budgets,
    or that none is."""
    if study.margins is None or readings is None:
        return "Against label smoothing: not computed (these results have no per-image outcomes)."
    verified = [r for r in readings if r.verified and r.measured]
    if not verified:
        return (
            "Against label smoothing: no budget's worst case is AutoAttack-verified, so no loss can be shown "
            "above the label-smoothing frontier."
        )
    where = V.budgets_text([(r.norm, r.eps) for r in verified])
    counted = [(inputs.label(row["loss"]), r.norm, r.eps) for r in verified for row in r.counted]
    uncounted = [(inputs.label(row["loss"]), r.norm, r.eps) for r in verified for row, _ in r.uncounted]
    if counted:
        text = (
            "Against label smoothing, above its frontier at their own clean accuracy at the AutoAttack-verified "
            f"budgets ({where}), counted: {V.named_budgets(counted)}."
        )
    else:
        text = (
            "Against label smoothing: no loss is shown above the frontier at its own clean accuracy at any "
            f"AutoAttack-verified budget ({where})."
        )
    if uncounted:
        text += f" Above it but not counted (diagnostics): {V.named_budgets(uncounted)}."
    placed = sum(len(r.counted) + len(r.uncounted) + len(r.below) + len(r.on) + len(r.undecided) for r in verified)
    if not placed:
        text += " No loss could be placed against the frontier there (see below)."
    return text


def _smoothing_why(inputs: ReportInputs, study: T.FrontierStudy, readings: list[FrontierReading] | None) -> str:
    """Where no loss is above the frontier at a verified budget: why, from the learning-rule analysis (each
    placed loss's effective target p* and the label-smoothing strength α(p*) that trains toward it), so a
    reader sees whether the losses are label smoothing in effect or something else; "" otherwise."""
    if study.margins is None or readings is None:
        return ""
    verified = [r for r in readings if r.verified and r.measured]
    if not verified or any(r.counted or r.uncounted for r in verified):
        return ""
    placed = list(dict.fromkeys(row["loss"] for r in verified for row in r.placed))
    equivalents = {s: equivalents for s, equivalents in _alpha_equivalents(inputs, study).items() if s in placed}
    inside_alphas = {s: a for s, (_, a, out) in equivalents.items() if a is not None and not out}
    inside = [(inputs.label(s), a) for s, a in inside_alphas.items()]
    beyond = [(inputs.label(s), a) for s, (_, a, out) in equivalents.items() if a is not None and out and a <= 1]
    # α(p*) > 1 means p* < 1/K: a target below the uniform distribution, which no label smoothing trains toward.
    below_uniform = [(inputs.label(s), a) for s, (_, a, _) in equivalents.items() if a is not None and a > 1]
    hard = [inputs.label(s) for s, (_, a, _) in equivalents.items() if a is None]
    parts = []
    if inside:
        parts.append(
            f"{_and([f'{n} (α(p*) = {a:.2f})' for n, a in inside])} "
            + ("trains" if len(inside) == 1 else "train")
            + " toward the target of label smoothing at a strength inside the range measured: by "
            + ("its learning rule it has" if len(inside) == 1 else "their learning rules they have")
            + " label smoothing's fixed point"
        )
    if beyond:
        parts.append(
            f"{_and([f'{n} (α(p*) = {a:.2f})' for n, a in beyond])} "
            + ("trains" if len(beyond) == 1 else "train")
            + " toward the target of label smoothing at a strength beyond the range measured, which this "
            "frontier does not cover"
        )
    if below_uniform:
        parts.append(
            f"{_and([f'{n} (α(p*) = {a:.2f})' for n, a in below_uniform])} "
            + ("trains" if len(below_uniform) == 1 else "train")
            + " toward a target below the uniform distribution (p* < 1/K), which no label smoothing trains toward"
        )
    if hard:
        parts.append(
            f"{_and(hard)} {'pursues' if len(hard) == 1 else 'pursue'} p → 1 as cross-entropy does (no label-"
            "smoothing equivalent)"
        )
    if not parts:
        return ""
    landed = _landings(inputs, study, verified, inside_alphas)
    return (
        "No loss is shown above; the learning rules (Loss analysis) of the losses placed at the verified budgets "
        "are consistent with that, not evidence for it: "
        + "; ".join(parts)
        + "."
        + (
            " The same fixed point need not give the same network; where each lands against label smoothing at "
            f"its own α(p*) (the arms interpolated linearly in α; point estimates, not tested): {landed}."
            if landed
            else ""
        )
    )


def _landings(
    inputs: ReportInputs, study: T.FrontierStudy, verified: list[FrontierReading], alphas: dict[str, float]
) -> str:
    """Where each loss lands against label smoothing at its own α(p*) (clean and robust accuracy of the
    arms interpolated linearly in α between the strengths measured), per verified budget: the same fixed
    point of the learning rule need not give the same network, and this says whether it did."""
    parts = []
    for loss, alpha in alphas.items():
        for reading in verified:
            arms = study.points.get((reading.attack, reading.eps))
            mine = [r for r in reading.placed if r["loss"] == loss]
            if arms is None or arms.empty or not mine or len(arms) < 2:
                continue
            arms = arms.sort_values("alpha")
            clean = float(np.interp(alpha, arms["alpha"], arms["clean"]))
            robust = float(np.interp(alpha, arms["alpha"], arms["robust"]))
            if max(robust, float(mine[0]["robust"])) < 0.005:  # both at the accuracy floor: nothing to compare
                continue
            parts.append(
                f"at {reading.budget}, {inputs.label(loss)} {T.pct(mine[0]['clean'])}% clean and "
                f"{T.pct(mine[0]['robust'])}% robust accuracy against label smoothing's {T.pct(clean)}% and "
                f"{T.pct(robust)}% at α {alpha:.2f}"
            )
    if not parts:
        return ""
    return "; ".join(parts)


def _power_sentence(summary: pd.DataFrame, correction: str, alpha: float) -> str:
    """How large a difference the design could show at all (`minimum_detectable`), so that a missing claim
    is read as what it is; empty when nothing was compared."""
    cells = minimum_detectable(summary, "primary", alpha)
    if cells.empty:
        return ""
    m, df, t = int(cells["family_size"].iloc[0]), float(cells["diff_df"].median()), float(cells["t"].median())
    # A cell with no spread at all (both losses at the same floor on every seed and image) has no standard
    # error to scale: it says nothing about power and is left out (and counted).
    spread = cells["diff_se"] > 0
    robust = cells.loc[spread & (cells["attack"] != "clean"), "min_detectable"] * 100
    clean = cells.loc[spread & (cells["attack"] == "clean"), "min_detectable"] * 100
    flat = int((~spread & (cells["attack"] != "clean")).sum())

    def points(value: float) -> str:  # a difference of accuracies cannot exceed 100 points
        return "more than 100" if value > 100 else f"{value:.1f}"

    parts = []
    if not robust.empty:
        parts.append(
            f"{points(robust.median())} percentage points for robust accuracy (median over the worst-case cells "
            "with any spread"
            + ("" if robust.min() > 100 else f"; {points(robust.min())} to {points(robust.max())}")
            + ")"
        )
    if not clean.empty:
        parts.append(f"{points(clean.median())} for clean accuracy")
    if not parts:
        return ""
    text = (
        f"Power: the differences are referred to t with {df:g} degree{'' if df == 1 else 's'} of freedom, so "
        f"after {correction} over "
        f"the {m} comparisons of the primary family the most significant one must exceed about {t:.1f} standard "
        f"errors: {' and '.join(parts)}."
    )
    if flat:
        text += (
            f" {flat} worst-case cell(s) have no spread at all (every network at the same accuracy) and are left "
            "out of that median (not of the family)."
        )
    if pd.concat([robust, clean]).min() > 100:
        return text + " No difference at all could be told from zero with this design (seeds, images, correction)."
    return text + (
        " A smaller difference cannot be told from zero with this design (seeds, images, correction): "
        '"no evidence" here is not evidence of no effect.'
    )


def _floor_sentences(
    inputs: ReportInputs,
    summary: pd.DataFrame,
    baseline: str,
    coverage: dict[tuple[str, float], Any],
    study: T.FrontierStudy | None,
) -> list[str]:
    """One sentence per AutoAttack-verified budget where the baseline's and every label-smoothing arm's
    worst-case robust accuracy lie below `FLOOR`: there no loss can be shown below them, and little above,
    so a missing claim says little."""
    arms = list(dict.fromkeys([baseline] + (list(study.smoothing) if study is not None else [])))
    out = []
    for (norm, eps), cov in sorted(coverage.items(), key=lambda kv: (kv[0][0] != "linf", float(kv[0][1]))):
        if not cov.verified:
            continue
        label = {n: a for a, n in V.NORM_OF_WORST.items()}[norm]
        rows = summary[(summary["attack"] == label) & np.isclose(summary["eps"].astype(float), float(eps))]
        means = rows.set_index("loss")["mean"]
        if any(a not in means.index or not means[a] < FLOOR for a in arms):
            continue
        others = [a for a in arms if a != baseline]
        text = (
            f"At {V.budget_text(norm, float(eps))} the worst case sits near the accuracy floor: "
            f"{inputs.label(baseline)} keeps {T.pct(means[baseline])}% robust accuracy"
        )
        if others:
            text += f" and every label-smoothing arm less than {100 * FLOOR:g}%"
        out.append(text + ', so "no claim" there says little.')
    return out


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
            f"Thresholds: {E.thresholds_text(inputs)}. A claim counts only where the blocking diagnostics "
            "(every one but `targeted_vs_ce`, whose ✗ marks a figure above its threshold but blocks nothing) were "
            "judged and passed on every seed of the loss and of the baseline at its budget, the baseline's "
            "without `transfer` (its networks are the transfer source, so its `transfer` reads `not run`); a "
            "blocking diagnostic that was not run blocks the claim too."
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
    paper = P.paper_attacks(attacks)
    own_loss = (
        f"except {_and([names[a] for a in paper])} (the paper's protocol, on each network's own training "
        f"loss: a weaker attack that stands behind no claim; see [{P.TITLE}](#{P.ANCHOR}))"
        if paper
        else "never the network's training loss"
    )
    items.append(
        f"Attacks run: {attack_text or 'none'}, L∞ unless marked L2 (then ε is an L2 radius), with "
        f"cross-entropy (or margin, DLR) on the logits, "
        f"{own_loss}. Robust accuracy under these attacks is an upper bound on "
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
        f"{per_attack} {_others_text(shown, settings)}"
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
        + _diagnostics_aside(inputs)
    )
    return items


def _diagnostics_aside(inputs: ReportInputs) -> str:
    """Where diagnostics failed: a pointer to them, so that "no reliability check failed" (a check of the
    evaluation itself) is not read as "nothing failed"; "" otherwise."""
    d = inputs.diagnostics
    if d is None or d.empty:
        return ""
    failed = d[d["status"] == "fail"]
    if failed.empty:
        return ""
    networks = failed[["loss", "seed"]].drop_duplicates()
    return (
        f" The diagnostics are a separate set (whether the attacks could have been fooled): {len(failed)} of "
        f"them failed, on {len(networks)} network(s) (loss × seed); see Diagnostics."
    )


def _others_text(shown: pd.DataFrame, settings: T.StatsSettings) -> str:
    """What the primary family's comparisons that are not significant say: no evidence of a difference,
    except those whose per-comparison interval excludes zero, which the correction alone leaves undecided."""
    rest = shown[~shown["significant"].astype(bool)]
    undecided = sum(V.interval_excludes_zero(r) for r in rest.to_dict("records"))
    text = "The others show no evidence of a difference at this sample size, which is not evidence of equality."
    if undecided:
        text = (
            f"Of the others, {undecided} have a per-comparison 95% interval that excludes 0 but are not "
            f"significant after {settings.correction_name.split(' (')[0]} over the {len(shown)} comparisons; the "
            "rest show no evidence of a difference at this sample size, which is not evidence of equality."
        )
    return text


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
            f"its attacks. Lines: mean over seeds; bands: {T.interval_kind(summary)}. ε = 0, where a panel has "
            "it, is the clean accuracy. A line stops where its attack did not run; an attack that starts at a "
            "larger ε (its title says ε ≥ or r ≥) has no point below it, not even at ε = 0, since it did not run "
            "there. A point with no line to it shows its interval as an error bar. An attack marked cascade ran "
            "only on the inputs that every attack of its norm in the panels before it left correct at that ε: "
            "its curve is the per-input worst case of those attacks and itself (a running worst case), not the "
            "attack on its own. In the worst-case panels a hollow marker is a "
            "budget whose worst case does not include the full AutoAttack ensemble (not verified, so the verdict "
            "counts no claim there); filled markers are AutoAttack-verified budgets (and ε = 0, clean accuracy). "
            "Each loss keeps its colour, marker and line style in every figure (a colour-blind-safe palette).",
            alt="robust accuracy against eps",
        )
    )
    if "per_seed" in figs:
        section.add(
            Image(
                figs["per_seed"],
                "The individual networks behind the means: one dot per seed, one panel per attack at the budgets "
                "it ran at, and per threat model the per-sample worst case (what the verdict rests on).",
                alt="per-seed accuracy",
            )
        )
    return section


def _budget_name(attack: str, eps: float) -> str:
    """ "ε = 0.1" or "L2 radius 1.5" for a worst-case label and its eps."""
    return V.budget_text(V.NORM_OF_WORST.get(attack, "linf"), eps)


def _budget_titles(inputs: ReportInputs, budgets: list[tuple[str, float]]) -> dict[tuple[str, float], str]:
    """Panel titles of the frontier figure: the budget and whether its worst case is AutoAttack-verified."""
    coverage = E.report_coverage(inputs)
    titles = {}
    for attack, eps in budgets:
        cov = V.coverage_at(coverage, V.NORM_OF_WORST.get(attack, "linf"), eps)
        word = "AutoAttack-verified" if cov is not None and cov.verified else "not AutoAttack-verified"
        titles[attack, eps] = f"worst case, {_budget_name(attack, eps)} ({word})"
    return titles


def _frontier_section(
    inputs: ReportInputs,
    settings: T.StatsSettings,
    study: T.FrontierStudy,
    readings: list[FrontierReading],
    figure: Path | None,
) -> Section:
    """ "Against label smoothing": the frontier of the label-smoothing arms per worst-case budget and every
    other loss's margin above it (`robust_glo.robustness.frontier`; `readings`, `_frontier_readings`), in
    words, a figure and a table."""
    section = Section("Against label smoothing", anchor="label-smoothing")
    arms = sorted(study.smoothing.items(), key=lambda kv: kv[1])
    arms_text = ", ".join(f"{inputs.label(s)} (α = {a:g})" for s, a in arms)
    section.add(
        Paragraph(
            "Does a loss give more robustness than label smoothing, tuned, gives at the same clean accuracy? The "
            f"label-smoothing arms of this study, {arms_text}, give one point (clean accuracy, worst-case robust "
            "accuracy) each per budget; their upper concave envelope (the points no other arm beats on both "
            "axes, less any below the line between its neighbours, joined by straight lines: conservative for "
            "a claim that a loss beats it) is the frontier. A loss's margin is its robust accuracy minus the "
            "frontier's at the loss's own clean accuracy c, which is (1) between two arms on the frontier, the "
            "straight line between them; (2) above the highest clean accuracy of any arm, that arm's robust "
            "accuracy; (3) below the lowest-clean arm on the frontier but not below every arm's clean accuracy, "
            "that arm's robust accuracy (the arms there are off the frontier because they are below it on both "
            "axes); and (4) below every arm's clean accuracy, not measured: the loss is not placed. Intervals "
            "and p come from the same "
            "bootstrap over seeds and test images as the rest of the report, the frontier rebuilt on every "
            "replicate; p uses Student's t with S − 1 degrees of freedom and is corrected by "
            f"{settings.correction_name} over every loss and budget placed. A loss **beats label smoothing** "
            f"at a budget only where the margin's interval lies above zero and the corrected p is below "
            f"{settings.alpha:g}. Method: {docs_ref('statistics.md', inputs.root)} (the label-smoothing frontier)."
        )
    )
    if study.margins is None:
        section.add(
            Paragraph(
                "Not computed: these results have no per-image outcomes (outcomes.csv), which the bootstrap of the "
                "frontier needs; re-run the attack stage to record them."
            )
        )
        return section
    correction = settings.correction_name.split(" (")[0]
    section.add(Bullets(_frontier_bullets(inputs, readings, correction, frontier_comparisons(study))))
    if figure is not None:
        section.add(
            Image(
                figure,
                "One panel per worst-case budget: clean accuracy (x) against the per-sample worst-case robust "
                "accuracy (y), in %, means over seeds with 95% intervals (as in the summary) as error bars. The "
                "label-smoothing arms on the frontier (their upper concave envelope) are ringed in black and "
                "joined by a black line (a hollow marker is an arm off it); the dotted continuations are "
                "the levels a loss beyond the highest clean accuracy, or between the lowest-clean arm and the "
                "frontier's lowest clean accuracy, is compared with. Every other loss is drawn with its "
                "intervals and a "
                "dashed line down (or up) to the frontier at its clean accuracy: the margin in the table. The "
                "clean-accuracy axis spans the label-smoothing arms and the losses placed against them (with their "
                "intervals); a loss with a lower clean accuracy (not placed) is drawn at the left edge, at its "
                "robust accuracy, as a marker with an arrow pointing left and its clean accuracy in its label. The "
                "title says whether the budget's worst case includes the full AutoAttack ensemble.",
                alt="the label-smoothing frontier",
            )
        )
    names = {b: _budget_name(*b) for b in study.budgets}
    section.add(
        Table(
            T.frontier_table(inputs, study.margins, names),
            nowrap=True,
            caption="Every loss against the label-smoothing frontier, per worst-case budget: clean and robust "
            "accuracy (%), the frontier's robust accuracy at the loss's clean accuracy, the margin in points "
            f"with its 95% interval (per comparison), p corrected by {settings.correction_name} over every "
            "loss and budget (so an interval may exclude zero while the corrected p is not significant: the "
            "result needs both), the margin to the measured arms joined directly without the concave hull "
            "(`to the arms' line`: a point estimate showing how much the hull's conservative chord moves it, "
            "never tested), where its clean accuracy lies "
            "(`inside` the arms' range, `above-range`: compared with the highest-clean arm, `below-range`: not "
            "placed), the result (`above`: beats label smoothing; `below`: significantly below it; `not "
            "distinguishable`: not shown above or below the frontier after the correction, whether or not "
            "its interval excludes zero; `not placed`), and the loss's effective target p* with the "
            "label-smoothing α that trains toward the same target (from the loss analysis; `none`: it pursues "
            "p → 1).",
        )
    )
    section.add(Paragraph(_equivalents_text(inputs, study)))
    return section


@dataclass
class FrontierReading:
    """One worst-case budget of the label-smoothing frontier, read once for the frontier section and the
    verdict: the budget, its AutoAttack coverage, and the `frontier_margins` rows of the other losses by
    result. `measured` is False where fewer than two label-smoothing arms were measured (no frontier)."""

    attack: str
    eps: float
    norm: str
    cov: V.CoverageLike | None
    measured: bool = True
    counted: list[dict[str, Any]] = field(default_factory=list)  # beats label smoothing, and counts
    uncounted: list[tuple[dict[str, Any], list[str]]] = field(default_factory=list)  # beats, with why not counted
    below: list[dict[str, Any]] = field(default_factory=list)  # significantly below, an arm beats it on both axes
    under: list[dict[str, Any]] = field(default_factory=list)  # significantly under the envelope, no arm beats it
    on: list[dict[str, Any]] = field(default_factory=list)  # no evidence either way: the interval includes 0
    # interval (per comparison) excludes 0, corrected p not below alpha: not "no evidence", and no claim either
    undecided: list[dict[str, Any]] = field(default_factory=list)
    below_range: list[dict[str, Any]] = field(default_factory=list)  # not placed: clean below every arm's
    unsure: list[dict[str, Any]] = field(default_factory=list)  # not placed: the replicates could not place it

    @property
    def budget(self) -> str:
        return _budget_name(self.attack, self.eps)

    @property
    def verified(self) -> bool:
        return self.cov is not None and self.cov.verified

    @property
    def placed(self) -> list[dict[str, Any]]:
        """The rows of the losses placed against the frontier here and not above it."""
        return [*self.on, *self.undecided, *self.below, *self.under]


def _below_note(reading: FrontierReading) -> str:
    """Why a loss is "below" label smoothing at this budget, and whether that counts."""
    return "a label-smoothing arm beats it on both axes" + (
        "" if reading.verified else "; not verified against AutoAttack, so not counted"
    )


# Why "under the line" is not "below label smoothing": the envelope is a maximum over noisy arms.
UNDER_WHY = "the line is a maximum over arms measured with noise, biased upward: not counted as below"

# Why a loss was not placed, by `FrontierReading` group: the frontier section's words and the verdict's.
UNPLACED_WHY = {
    "below_range": (
        "clean accuracy below every label-smoothing arm's",
        "clean accuracy below every arm's",
    ),
    "unsure": (
        "clean accuracy so near the arms' that over a tenth of the bootstrap replicates cannot place it",
        "too near the arms' clean accuracy for the bootstrap to place",
    ),
}


def _frontier_readings(inputs: ReportInputs, study: T.FrontierStudy, baseline: str) -> list[FrontierReading]:
    """Per worst-case budget of `study`: its coverage and the other losses grouped by `tables.frontier_result`,
    a loss that beats label smoothing split by the verdict's counting rule (`verdict.claim_gate`). Empty
    without margins (no per-image outcomes)."""
    if study.margins is None:
        return []
    coverage = E.report_coverage(inputs)
    margins = study.margins
    out = []
    for attack, eps in study.budgets:
        norm = V.NORM_OF_WORST.get(attack, "linf")
        cov = V.coverage_at(coverage, norm, eps)
        here = margins[(margins["attack"] == attack) & (margins["eps"] == eps)]
        reading = FrontierReading(attack, eps, norm, cov, measured=not here.empty)
        for r in here.to_dict("records"):
            result = T.frontier_result(r)
            if result == T.FRONTIER_RESULTS["above"]:
                # The verdict's rule: a verified worst case, and every blocking diagnostic judged and passed
                # on every seed of the loss and of every label-smoothing arm the frontier is built from.
                arms = {r["loss"]: BLOCKING} | {
                    a: BLOCKING_BASELINE if a == baseline else BLOCKING for a in study.smoothing
                }
                reasons = V.claim_gate(inputs.diagnostics, cov, norm, eps, arms, {a: inputs.label(a) for a in arms})
                if reasons:
                    reading.uncounted.append((r, reasons))
                else:
                    reading.counted.append(r)
            elif result == T.FRONTIER_RESULTS["below"]:
                reading.below.append(r)
            elif result == T.FRONTIER_RESULTS["under"]:
                reading.under.append(r)
            elif result == T.FRONTIER_RESULTS["on"]:
                if V.interval_excludes_zero(r, "margin_ci_low", "margin_ci_high"):
                    reading.undecided.append(r)
                else:
                    reading.on.append(r)
            elif r["position"] == "below-range":
                reading.below_range.append(r)
            else:
                reading.unsure.append(r)
        out.append(reading)
    return out


def frontier_comparisons(study: T.FrontierStudy) -> int:
    """The number of frontier margins corrected together (every loss and budget placed)."""
    if study.margins is None or study.margins.empty:
        return 0
    return int(study.margins["p_value"].notna().sum())


def _frontier_bullets(
    inputs: ReportInputs, readings: list[FrontierReading], correction: str = "Holm", n_compared: int = 0
) -> list[str]:
    """Per worst-case budget: which attacks stand behind it (AutoAttack-verified or not), which losses beat
    label smoothing there (only where `frontier_margins` says beats), which lie below it, which are on it
    (interval including zero), which have an interval excluding zero that is not significant after the
    `correction` over `n_compared` margins, and which could not be placed."""
    items = []
    for reading in readings:
        cov = reading.cov
        behind = (
            "unknown attacks"
            if cov is None
            else f"{V.attack_names(cov.ran)}, "
            + ("AutoAttack-verified" if reading.verified else "not verified against AutoAttack")
        )
        head = f"At {reading.budget} (worst case of {behind})"
        if not reading.measured:
            items.append(head + ": fewer than two label-smoothing arms were measured here, so no frontier.")
            continue
        parts = []
        if reading.counted:
            parts.append(f"beats label smoothing: {_frontier_names(inputs, pd.DataFrame(reading.counted))}")
        for r, reasons in reading.uncounted:
            parts.append(
                "beats label smoothing under these attacks, but not counted ("
                + "; ".join(reasons)
                + f"): {_frontier_names(inputs, pd.DataFrame([r]))}"
            )
        if not reading.counted and not reading.uncounted:
            parts.append("no loss is shown to beat label smoothing")
        if reading.below:
            parts.append(
                f"below the frontier ({_below_note(reading)}): {_frontier_names(inputs, pd.DataFrame(reading.below))}"
            )
        if reading.under:
            names = _frontier_names(inputs, pd.DataFrame(reading.under))
            parts.append(f"significantly under the line but beaten by no arm on both axes ({UNDER_WHY}): {names}")
        if reading.on:
            names = _frontier_names(inputs, pd.DataFrame(reading.on))
            parts.append(f"not distinguishable from the frontier (no evidence either way): {names}")
        if reading.undecided:
            parts.append(
                f"{V.unsure_text(correction, n_compared)}: {_frontier_names(inputs, pd.DataFrame(reading.undecided))}"
            )
        for key, (why, _) in UNPLACED_WHY.items():
            group = getattr(reading, key)
            if group:
                parts.append(
                    f"not placed ({why}): "
                    + ", ".join(f"{inputs.label(r['loss'])} (clean {T.pct(r['clean'])}%)" for r in group)
                )
        items.append(head + ": " + "; ".join(parts) + ".")
    return items


def _smoothing_sentences(
    inputs: ReportInputs,
    summary: pd.DataFrame,
    baseline: str,
    study: T.FrontierStudy,
    readings: list[FrontierReading] | None,
    correction: str = "Holm",
) -> list[str]:
    """The verdict's answer to the study's question, one sentence per worst-case budget: the losses above
    the label-smoothing frontier at their own clean accuracy (margin, interval, corrected p, counted or not
    by the verdict's rule, clean accuracy against the baseline), then every other loss: below it, on it
    (interval including zero), not significant after the `correction` although its interval excludes zero,
    or not placed, each with its margin and corrected p and its α(p*), all read from the frontier section's
    `readings`."""
    if study.margins is None or readings is None:
        return ["**Against label smoothing**: not computed (these results have no per-image outcomes)."]
    base = inputs.label(baseline)
    clean = T.clean_rows(summary).set_index("loss")
    equivalents = _alpha_equivalents(inputs, study)
    n_compared = frontier_comparisons(study)

    def above(r: dict[str, Any]) -> str:
        text = f"{inputs.label(r['loss'])} (margin {T.margin_cell(r)} points, corrected p = {T.fmt_p(r['p_adjusted'])}"
        if r["loss"] in clean.index:
            text += f"; clean accuracy {T.pct(r['clean'])}%, against {base} {V.diff_text(clean.loc[r['loss']])}"
        return text + ")"

    def named(r: dict[str, Any], value: str) -> str:
        _, alpha, outside = equivalents.get(r["loss"], (None, None, False))
        if alpha is not None:
            value += f"; its target is label smoothing's at α(p*) = {T.alpha_text(alpha, 3)}" + (
                ", beyond the strengths measured" if outside and alpha <= 1 else ""
            )
        return f"{inputs.label(r['loss'])} ({value})"

    def margin(r: dict[str, Any]) -> str:
        return f"{T.margin_cell(r)} points, corrected p = {T.fmt_p(r['p_adjusted'])}"

    out = []
    for reading in readings:
        head = f"**Against label smoothing at {reading.budget}**, {V.coverage_text(reading.cov)}"
        if not reading.measured:
            out.append(head + ": fewer than two label-smoothing arms were measured here, so no frontier.")
            continue
        if reading.counted:
            own = "their" if len(reading.counted) > 1 else "its"
            parts = [
                f"above the frontier at {own} own clean accuracy, counted: {', '.join(map(above, reading.counted))}"
            ]
        elif reading.uncounted:
            parts = ["no loss counts as above the frontier at its own clean accuracy"]
        else:
            parts = ["no loss is shown above the frontier at its own clean accuracy"]
        parts += [f"above it but not counted ({'; '.join(why)}): {above(r)}" for r, why in reading.uncounted]
        if reading.below:
            parts.append(f"below it ({_below_note(reading)}): " + ", ".join(named(r, margin(r)) for r in reading.below))
        if reading.under:
            parts.append(
                f"significantly under the frontier's line but beaten by no arm on both axes ({UNDER_WHY}): "
                + ", ".join(named(r, margin(r)) for r in reading.under)
            )
        if reading.on:
            parts.append(
                "not distinguishable from it (no evidence either way): "
                + ", ".join(named(r, margin(r)) for r in reading.on)
            )
        if reading.undecided:
            parts.append(
                f"{V.unsure_text(correction, n_compared)}: " + ", ".join(named(r, margin(r)) for r in reading.undecided)
            )
        for key, (_, why) in UNPLACED_WHY.items():
            group = getattr(reading, key)
            if group:
                parts.append(
                    f"not placed ({why}): " + ", ".join(named(r, f"clean {T.pct(r['clean'])}%") for r in group)
                )
        out.append(head + ": " + "; ".join(parts) + "." + _frontier_shape(inputs, study, reading))
    power = _frontier_power(study, correction)
    return out + ([power] if power else [])


def _frontier_shape(inputs: ReportInputs, study: T.FrontierStudy, reading: FrontierReading) -> str:
    """What the frontier is made of at this budget (the arms on the envelope, and how many lie below it),
    and, where every loss placed there keeps less than `FLOOR` robust accuracy, that the comparison sits
    near the accuracy floor; "" where there is nothing to say."""
    points = study.points.get((reading.attack, reading.eps))
    if points is None or points.empty or "pareto" not in points:
        return ""
    on = points[points["pareto"].astype(bool)].sort_values("clean")
    below = len(points) - len(on)
    named = [f"{inputs.label(r['loss'])} ({T.pct(r['clean'])}, {T.pct(r['robust'])})" for r in on.to_dict("records")]
    text = " The frontier here (clean, robust accuracy in %) is " + (
        f"the line from {' to '.join(named)}" if len(named) > 1 else f"the single arm {named[0]}"
    )
    if below:
        text += f"; the other {below} arm{'s lie' if below > 1 else ' lies'} below it"
    text += "."
    placed = [r for r in reading.placed if pd.notna(r["frontier"])]
    if placed and max(float(r["robust"]) for r in placed) < FLOOR:
        top = max(float(r["frontier"]) for r in placed)
        text += (
            f" Every loss placed here keeps less than {100 * FLOOR:g}% robust accuracy, and the frontier at their "
            f"clean accuracies is at most {T.pct(top)}%: the comparison sits near the accuracy floor."
        )
    return text


def _frontier_power(study: T.FrontierStudy, correction: str, alpha: float = 0.05) -> str:
    """How large a margin the design could show at all: after the `correction` over every margin placed,
    the most significant must pass t_df(1 - alpha / 2M) standard errors (`first_rejection_t`); "" when no
    margin has a standard error."""
    m = frontier_comparisons(study)
    if not m or study.margins is None or "margin_se" not in study.margins:
        return ""
    rows = study.margins[(study.margins["margin_se"] > 0) & study.margins["margin_df"].notna()]
    if rows.empty:
        return ""
    df = float(rows["margin_df"].median())
    t = first_rejection_t(df, m, alpha)
    need = 100 * t * rows["margin_se"]
    return (
        f"Power against the frontier: margins are referred to t with {df:g} degree{'' if df == 1 else 's'} of "
        f"freedom, so after {correction} over the {m} margins placed the most significant must exceed about "
        f"{t:.1f} standard errors: {need.median():.1f} points (median over the margins; {need.min():.1f} to "
        f'{need.max():.1f}). A smaller margin cannot be told from zero: "not distinguishable" is not evidence '
        "that a loss lies on the frontier."
    )


def _frontier_names(
    inputs: ReportInputs,
    rows: pd.DataFrame,
    diagnostics: pd.DataFrame | None = None,
    norm: str = "linf",
    eps: float = 0.0,
    blocking: tuple[str, ...] = (),
) -> str:
    """ "X (+5.1 points [+1.2, +9.0] from the frontier at its clean accuracy 85.0%, corrected p = 0.012)",
    with the blocking diagnostics a loss failed at the budget when `diagnostics` are given."""
    out = []
    for r in rows.to_dict("records"):
        text = (
            f"{inputs.label(r['loss'])} ({T.margin_cell(r)} points from the frontier at its clean accuracy "
            f"{T.pct(r['clean'])}%, corrected p = {T.fmt_p(r['p_adjusted'])}"
        )
        if diagnostics is not None:
            failed = [f for f in V.failed_diagnostics(diagnostics, r["loss"], norm, eps) if f.split(" ")[0] in blocking]
            if failed:
                text += f"; failed diagnostics: {', '.join(failed)}"
        out.append(text + ")")
    return ", ".join(out)


ALPHA_TOLERANCE = 5e-4  # a strength written to 4 decimals (0.7597) stands for Baikal's 0.759746...


def _alpha_equivalents(
    inputs: ReportInputs, study: T.FrontierStudy
) -> dict[str, tuple[float | None, float | None, bool]]:
    """Each loss placed against the frontier that the learning-rule analysis covers -> (p*, α(p*), whether
    α(p*) lies outside the label-smoothing strengths measured); α(p*) None where the loss pursues p → 1."""
    equivalents = T.label_smoothing_equivalents(inputs)
    alphas = sorted(study.smoothing.values())
    low, high = alphas[0], alphas[-1]
    others = list(dict.fromkeys(study.margins["loss"])) if study.margins is not None else []
    out = {}
    for loss in others:
        if loss in equivalents:
            p_star, alpha = equivalents[loss]
            outside = alpha is not None and not low - ALPHA_TOLERANCE <= alpha <= high + ALPHA_TOLERANCE
            out[loss] = (p_star, alpha, outside)
    return out


def _equivalents_text(inputs: ReportInputs, study: T.FrontierStudy) -> str:
    """The learning-rule reading: each placed loss's alpha(p*) against the strengths of label smoothing
    measured, so a reader sees which losses the frontier covers at their own effective target."""
    alphas = sorted(study.smoothing.values())
    low, high = alphas[0], alphas[-1]
    parts, outside = [], []
    for loss, (p_star, alpha, beyond) in _alpha_equivalents(inputs, study).items():
        name = inputs.label(loss)
        if alpha is None:
            parts.append(f"{name}: none (it pursues p → 1, as cross-entropy does)")
            continue
        parts.append(f"{name}: α(p*) = {T.alpha_text(alpha, 3)} (p* = {p_star:.3f})")
        if beyond:
            outside.append(name)
    if not parts:
        return (
            "The learning-rule analysis (analysis.json) is not part of these results, so the losses' "
            "label-smoothing equivalents α(p*) are not shown."
        )
    text = (
        f"Label smoothing was measured at α = {', '.join(f'{a:g}' for a in alphas)}. By their learning rules "
        "(Loss analysis), the other losses train toward the target of label smoothing at: " + "; ".join(parts) + "."
    )
    if outside:
        text += (
            f" The α(p*) of {_and(outside)} {'lies' if len(outside) == 1 else 'lie'} outside the strengths "
            f"measured ({low:g} to {high:g}): label smoothing at "
            + ("its effective target" if len(outside) == 1 else "their effective targets")
            + " was not trained here, so this frontier cannot say whether "
            + ("it is" if len(outside) == 1 else "they are")
            + " label smoothing at α(p*) or something else."
        )
    return text


def _paper_protocol_section(inputs: ReportInputs, summary: pd.DataFrame, settings: T.StatsSettings) -> Section | None:
    """ "The paper's protocol beside the strict one" (`robust_glo.reporting.protocol`): per loss and budget,
    the difference to the baseline under FGSM on the network's own training loss, FGSM on cross-entropy
    and the worst case, and the share of the paper-protocol gain the worst case keeps. None where the
    results hold no `fgsm:loss=train` column."""
    attacks = T.attack_order(T.measured(inputs.results))
    paper = P.paper_attacks(attacks)
    if not paper:
        return None
    labels = {s: inputs.label(s) for s in inputs.losses}
    rows = P.protocol_rows(summary, settings.baseline, attacks, E.report_coverage(inputs), inputs.diagnostics)
    if rows.empty:
        return None
    boot = T.frontier_bootstrap(inputs, settings, extra=paper)
    rows = P.add_gaps(rows, boot, settings.baseline, settings.correction, settings.alpha)
    base = inputs.label(settings.baseline)
    names = T.attack_names(attacks)
    section = Section(P.TITLE, anchor=P.ANCHOR)
    same = (
        f" For {base}, whose training loss is cross-entropy, (a) and (b) are the same attack."
        if settings.baseline == "ce"
        else ""
    )
    section.add(
        Paragraph(
            "The TaylorGLO paper measures robustness with FGSM on each network's own training loss. That "
            f"protocol ran here as {_and([f'{names[a]} (`{a}`)' for a in paper])}, on the same networks as "
            f"the strict one, so each loss's difference to {base} can be read three ways: (a) under FGSM on "
            "the network's own loss (the paper's protocol), (b) under FGSM on cross-entropy, the loss every "
            "network shares, and (c) under the per-input worst case over every attack that ran at that budget "
            "(the strict protocol; whether it includes the AutoAttack ensemble is said as in the verdict). "
            "**Kept** is (c) / (a), the share of the paper-protocol gain that the strict protocol keeps. It "
            "is shown only where (a) is a significant gain (adjusted p below "
            f"{settings.alpha:g} and its 95% interval above zero; a ratio to anything less divides by noise) and "
            "(c) is AutoAttack-verified with every blocking diagnostic passed, as the verdict would count it; "
            f'elsewhere the table says which condition fails ("{P.NO_GAIN}", "{P.NOT_VERIFIED}", '
            f'"{P.NOT_DIAGNOSED}"). Kept is a ratio of two mean differences without an interval of its own, '
            "and it is not capped: a value above 100% means the worst case shows a larger difference than (a); "
            f'where (c) is not itself a significant gain the share is marked "{P.NOISY_WORST}" (it divides '
            "noise by (a)). (a) is a weaker attack: a loss whose gradient is flat where "
            "the network is confident looks robust under it although cross-entropy attacks break the same "
            "network, so it never stands behind a claim of this report: the verdict rests on the worst case "
            "alone (which includes (a) as one of its attacks, so (a) can only lower it). The differences, "
            "intervals and p are the statistics' own (summary.csv): (a) and (b) are per-attack cells, "
            "corrected within the secondary family, (c) is the worst case, corrected within the primary "
            f"family ({settings.correction_name.split(' (')[0]}).{same} In the sentences below a difference "
            "counts as evidence "
            f"only where its adjusted p is below {settings.alpha:g} and its 95% interval lies on one side "
            "of zero; the intervals are per comparison, so one may exclude zero while the corrected p is not "
            "significant, and the sentence then says so."
        )
    )
    correction = settings.correction_name.split(" (")[0]
    section.add(Bullets(P.protocol_sentences(rows, labels, settings.baseline, correction)))
    section.add(
        Table(
            P.protocol_table(rows, labels),
            nowrap=True,
            caption=f"Per loss and budget where the paper's protocol ran: the difference to {base} in "
            "percentage points with its 95% interval and adjusted p (as in the Summary's differences; "
            f"`*`: p < {settings.alpha:g}; an attack whose outcomes are the worst case's on every network "
            "takes the worst case's p) under (a) FGSM on the network's own training loss, (b) FGSM on "
            "cross-entropy (`not run` where no such FGSM ran) and (c) the worst case, whether that worst "
            "case is AutoAttack-verified, and kept = (c) / (a) where (a) is a significant gain and (c) is "
            "AutoAttack-verified with every blocking diagnostic passed (elsewhere: which condition fails). Kept is a "
            "ratio of two mean differences, without an interval of its own; a value above 100% means the "
            f'worst case shows a larger difference than (a); "{P.NOISY_WORST}": (c) is not a significant gain. '
            "(a) − (c) tests the question directly: the paper-protocol gain the worst case does not keep, with "
            "its 95% interval from the same paired bootstrap and p corrected over the rows of this table "
            f"(`*`: p < {settings.alpha:g} and the interval on one side of zero).",
        )
    )
    return section


def _statistics_section(inputs: ReportInputs, summary: pd.DataFrame, settings: T.StatsSettings) -> Section:

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
            "interval is the 2.5–97.5 percentile range of the replicates, stretched about the estimate by "
            "t/z with S − 1 degrees of freedom (S seeds); where a loss got no image right on any "
            "seed (or every image on every seed) it is widened to at least the exact Clopper–Pearson interval "
            "over the N test images (up to about 3.7/N above 0%), not a point. The p-value of a difference is "
            "2 P(T > |Δ|/SE) with T Student's t with S − 1 degrees of freedom (the seed part of SE is estimated "
            "from S − 1 df), Δ the observed difference and SE the standard "
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


def _fitness_meaning(fitness: str, config: dict[str, Any]) -> str:
    """The evolution's fitness in words: the stated objective (the robust part's attack and images named)
    and, under `clean_margin`, the clean-accuracy constraint that turns it into the rank key."""
    if fitness == "clean":
        text = "1 − validation accuracy"
    else:
        parts = str(fitness).split(":")
        weight = parts[1] if parts[0] == "mix" and len(parts) > 1 else "1"
        attack = parts[2:] if parts[0] == "mix" else parts
        name = attack[0].upper() if attack else "?"
        if name == "PGD":
            name = f"PGD-{attack[2] if len(attack) > 2 else 10}"
        eps = attack[1] if len(attack) > 1 else "?"
        images = config.get("attack_samples")
        on = f"the first {images} validation images" if images else "the validation images"
        text = (
            f"`{fitness}`: the objective 1 − ((1 − w) · clean + w · robust validation accuracy) with w = {weight}, "
            f"the robust accuracy under {name} on cross-entropy at ε {eps} on {on} (a proxy far weaker than "
            "the attacks of the evaluation)"
        )
    margin = config.get("clean_margin")
    if margin is None:
        return text
    return (
        f"{text}, ranked under the clean-accuracy constraint (clean margin {float(margin):g}): a candidate "
        f"whose clean validation accuracy is at least cross-entropy's (trained beside it on the same budget, "
        f"weights and batches) minus {float(margin):g} gets fitness 0.5 × objective, one below it 0.5 + 0.5 × "
        "its shortfall, after all of those; a fitness of at most 0.5 therefore met the constraint"
    )


def _evolution_section(inputs: ReportInputs, evo: EvolutionInputs, figs: dict[str, Path]) -> Section:
    history = evo.history
    stem = _evolution_stem(evo)
    title = f"Evolution: {evo.name}" if evo.name else "Evolution"
    section = Section(title, anchor=f"evolution-{evo.name}" if evo.name else "evolution")
    several = bool(evo.searches)
    runs = [s.history for s in evo.searches] if several else [history]
    gens = [T.evolution_generations(h) for h in runs]
    rejected = sum(int(g["rejected"].sum()) for g in gens)
    total = sum(int(g["candidates"].sum()) for g in gens)
    trained = sum(int(g["trained"].sum()) for g in gens)
    suite = inputs.suite or {}
    config = (suite.get("evolutions") or {"": suite.get("evolve") or {}}).get(evo.name) or {}
    fitness = config.get("fitness", "clean")
    meaning = _fitness_meaning(fitness, config)
    halving = config.get("fidelity") == "halving"
    pruned = sum(int(g["pruned"].sum()) for g in gens)
    collapsed = sum(int(g["collapsed"].sum()) for g in gens)
    steps = sum(int(g["steps"].fillna(0).sum()) for g in gens)
    rungs_text = (
        f" Successive halving (eta {config.get('eta', 3)}, {config.get('rungs', 3)} rungs) stopped {pruned} "
        f"candidates at a lower rung and {collapsed} as collapsed (chance accuracy or a loss that did not "
        f"move); {steps:,} training steps were spent in all."
        if halving
        else ""
    )
    if several:
        seeds = [(s.config or {}).get("seed") for s in evo.searches]
        seeds_text = ", ".join("?" if v is None else str(v) for v in seeds)
        chosen = (evo.best_loss or {}).get("search", (evo.agreement or {}).get("chosen"))
        opening = (
            f"{len(evo.searches)} independent CMA-ES searches (seeds {seeds_text}, one run directory each, "
            f"{evo.folder}/search0 … search{evo.searches[-1].index}) evaluated {total} candidates in all, "
            f"{max(len(g) for g in gens)} generations each; the invariant rejected {rejected} "
            f"({rejected / max(total, 1):.0%}) without training them."
        )
        choice = (
            f" The benchmark trains the loss of the search whose best loss has the lowest re-evaluated fitness: "
            f"search {chosen}."
            if chosen is not None
            else ""
        )
    else:
        opening = (
            f"CMA-ES evaluated {total} candidates over {len(gens[0])} generations; the invariant "
            f"rejected {rejected} ({rejected / max(total, 1):.0%}) without training them."
        )
        choice = ""
    section.add(
        Paragraph(
            f"{opening} Fitness, measured after a short training run, is {meaning}. Candidates not trained to "
            "the end rank "
            f"after every trained one ({docs_ref('method.md', inputs.root)}).{rungs_text}{choice}"
        )
    )
    if several:
        section.add(Paragraph(_agreement_text(evo)))
        earlier = inputs.evolutions[: next(k for k, e in enumerate(inputs.evolutions) if e is evo)]
        for other in earlier:  # said once, in the later evolution's section
            if text := _shared_sampling_text(evo, other):
                section.add(Paragraph(text))
    only = (
        f"Only the {trained} candidates trained to the full budget (status `trained`) are plotted: their "
        "fitness is a fitness; the others carry rank bands above 1 (rejected, pruned, collapsed, diverged, "
        "failed), which order the search but measure nothing."
    )
    section.add(
        Image(
            figs[stem],
            "Optimization history. Left: the fitness of every trained candidate against its position in the "
            "order of evaluation, "
            + (
                "one colour and marker per search, with each search's best so far as a step line. "
                if several
                else "with the best so far as a step line. "
            )
            + only
            + (
                " Under the clean-accuracy constraint a fitness of at most 0.5 met it (0.5 × objective); one just "
                "above 0.5 is a candidate that missed it (0.5 + 0.5 × its shortfall)."
                if config.get("clean_margin") is not None
                else ""
            )
            + " Right: the share of each generation"
            + (" (summed over the searches)" if several else "")
            + " that was not trained to the end.",
            alt="optimization history",
        )
    )
    importance = T.parameter_importance(history)
    section.add(
        Image(
            figs[f"{stem}-parameters"],
            "The search space. Left: parallel coordinates of the 8 TaylorGLO parameters θ0…θ7 (history.csv "
            "theta0…theta7), one line per trained candidate"
            + (" of every search" if several else "")
            + ", coloured by its fitness (darker is better), the best "
            + ("of each search" if several else "candidate")
            + " in black. Right: parameter importance as |Spearman ρ| of each parameter with fitness over "
            "the same candidates (scipy.stats.spearmanr), coloured by the sign of ρ. " + only,
            alt="parameters and their importance",
        )
    )
    if several and evo.searches_table is not None and not evo.searches_table.empty:
        section.add(
            Table(
                T.searches_table(evo.searches_table, {s.index: s.best_loss for s in evo.searches}),
                nowrap=True,
                caption=f"Every search's best loss ({evo.folder}/searches.csv): its re-evaluated fitness ± its "
                "standard deviation over the re-evaluation seeds, validation and robust accuracy (%), the "
                "effective target p* of its learning rule and the label-smoothing α that trains toward the "
                "same target, its θ, and which one the benchmark trains; under a clean-accuracy constraint "
                "also the objective (mean over the re-evaluation seeds) and on how many of those seeds the "
                "loss met the constraint (from each search's best_loss.json).",
            )
        )
    if several:
        section.add(
            Table(
                T.search_generations_table(evo),
                "Per search (from each search<k>/history.csv): candidates by outcome, training steps, the best "
                "fitness the search met and the compute seconds of its candidates.",
            )
        )
    section.add(
        Table(
            T.importance_table(importance),
            f"Parameter importance over the {int(importance['n'].max()) if len(importance) else 0} trained "
            "candidates: Spearman's rank correlation of each parameter with fitness (ρ > 0: larger θ, worse "
            "fitness), its p uncorrected for the 8 parameters. With few candidates, and with CMA-ES sampling "
            "around its own mean, a correlation describes where this search went, not a law of the loss.",
        )
    )
    if not several:
        section.add(Table(T.evolution_table(history), f"Per generation (from {evo.folder}/history.csv)."))
    reeval, reeval_from = evo.reevaluation, f"{evo.folder}/reevaluation.csv"
    if several:
        chosen = (evo.best_loss or {}).get("search")
        mine = [s for s in evo.searches if s.index == chosen]
        reeval = mine[0].reevaluation if mine else None
        reeval_from = f"{mine[0].folder}/reevaluation.csv, the chosen search" if mine else reeval_from
    if reeval is not None and not reeval.empty:
        section.add(
            Table(
                T.reevaluation_table(reeval),
                f"The best candidates of the search, re-trained on fresh seeds ({reeval_from}); "
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


def _shared_sampling_text(evo: EvolutionInputs, other: EvolutionInputs) -> str:
    """Whether this evolution searched anywhere the other did not: per search of a shared seed, how many
    generations sampled the very same candidates, and, under a clean-accuracy constraint, how many trained
    candidates met it (those that did not are ranked by their clean shortfall alone, which is the clean
    evolution's order); "" when no search shares a seed or none sampled alike."""
    shared = T.shared_sampling(evo, other)
    if not any(s.same for s in shared):
        return ""

    def one(s: T.SharedSampling) -> str:
        if s.first_apart is None:
            text = f"search {s.search} in all {s.generations} generations"
        elif s.same == s.first_apart:
            text = f"search {s.search} in generations 0–{s.first_apart - 1} of {s.generations}"
        else:
            text = f"search {s.search} in {s.same} of {s.generations} generations"
        return text + (" (and both chose the same θ)" if s.same_choice else "")

    name = other.name or "the other evolution"
    text = (
        f"How far this evolution departed from the {name} one: their searches share CMA-ES seeds, so they "
        f"start from the same samples, and they sampled the very same candidates in "
        f"{V.and_list([one(s) for s in shared if s.same])}. A generation repeats only where both fitness "
        "functions had ranked every earlier generation's candidates in the same order (CMA-ES updates from the "
        "whole ranking): there the two objectives did not steer the search apart."
    )
    chosen = (evo.best_loss or {}).get("search")
    mine = [s for s in shared if s.search == chosen and s.chosen_shared]
    if mine:
        text += (
            f" The loss this evolution chose (search {chosen}) was sampled in generation {mine[0].chosen_generation}, "
            f"which both evolutions sampled alike: the {name} evolution trained the same θ, and this objective "
            "only selected it among candidates that the other ranking had proposed too."
        )
    met = [m for s in evo.searches if (m := T.constraint_share(s.history)) is not None]
    if met:
        ok, total = sum(m[0] for m in met), sum(m[1] for m in met)
        text += (
            f" Of its {total} candidates trained to the end, {ok} met the clean-accuracy constraint; the others "
            "are ranked by their clean shortfall alone, which is the clean-accuracy evolution's order. The "
            "constraint is judged on one training run per candidate against one cross-entropy run at the same "
            "budget, so a miss by a fraction of a point is within seed noise."
        )
    return text


def _searches_without_p_star(table: pd.DataFrame | None) -> int:
    """How many usable searches' best losses have no effective target p* (they pursue p → 1)."""
    if table is None or "p_star" not in table:
        return 0
    usable = table[table["usable"].map(T.truthy)] if "usable" in table else table
    return int(pd.to_numeric(usable["p_star"], errors="coerce").isna().sum())


def _agreement_text(evo: EvolutionInputs) -> str:
    """How much the searches of an evolution agree, in words, from searches.json (and searches.csv)."""
    agreement, table = evo.agreement, evo.searches_table
    k = len(evo.searches)
    if not agreement:
        return f"How much the {k} searches agree is not recorded here ({evo.folder}/searches.json is absent)."
    usable, empty = int(agreement.get("searches", 0)), int(agreement.get("empty", 0))
    text = f"How much the searches agree ({evo.folder}/searches.json): {usable} of {usable + empty} found a usable loss"
    text += f" ({empty} trained no candidate to the end and is listed, never chosen)" if empty else ""
    lo, hi = agreement.get("fitness_min"), agreement.get("fitness_max")
    if lo is not None and hi is not None:
        text += (
            f"; their best losses' re-evaluated fitness ranges from {lo:.4f} to {hi:.4f} (a spread of {hi - lo:.4f})"
        )
    p_lo, p_hi = agreement.get("p_star_min"), agreement.get("p_star_max")
    without = _searches_without_p_star(table)
    if p_lo is not None and p_hi is not None:
        text += f"; their effective targets p* from {p_lo:.3f} to {p_hi:.3f}"
        if table is not None and "alpha_equivalent" in table:
            alphas = pd.to_numeric(table["alpha_equivalent"], errors="coerce").dropna()
            if len(alphas):
                text += f" (label-smoothing α {alphas.min():.3f} to {alphas.max():.3f})"
        if without:
            text += f", and {without} of the {usable} pursue{'s' if without == 1 else ''} p → 1 (no p* below 1)"
    elif without:
        text += "; none of their best losses has an effective target p* below 1 (each pursues p → 1)"
    distance = agreement.get("theta_distance_median")
    if distance is not None and not (isinstance(distance, float) and math.isnan(distance)):
        text += f"; the median distance between two searches' best θ is {distance:.2f}"
        if table is not None and all(c in table for c in T.THETAS):
            thetas = table[T.THETAS].apply(pd.to_numeric, errors="coerce").dropna()
            if len(thetas):
                norm = float(np.median(np.linalg.norm(thetas.to_numpy(float), axis=1)))
                text += f", against a median length |θ| of {norm:.2f}"
    elif usable < 2:
        text += "; with fewer than two usable searches there is no distance between their θs to report"
    return text + "."


def _short(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _analysis_section(inputs: ReportInputs, figs: dict[str, Path]) -> Section:
    section = Section("Loss analysis", anchor="loss-analysis")
    section.add(
        Paragraph(
            f"The learning rule of each loss on the logits ({docs_ref('method.md', inputs.root)}). "
            "The effective target p* is where the target-logit gradient vanishes with the other classes equal: "
            "the learning rule stops pushing the target probability up there instead of pursuing p → 1 (a fixed "
            "point of the rule on that slice, not a claim about where training ends). p* < 1 acts as implicit "
            "label smoothing with the α shown; cross-entropy has none."
        )
    )
    trained = set(inputs.losses)
    extra = [str(a["spec"]) for a in inputs.analysis if a.get("spec") is not None and str(a["spec"]) not in trained]
    caption = "From analysis/analysis.json."
    if extra:
        caption += (
            f" {V.and_list([inputs.label(x) for x in extra])} {'is' if len(extra) == 1 else 'are'} analysed for "
            "comparison only (the suite's `[analyze] extra_losses`): never trained or attacked here."
        )
    section.add(Table(T.analysis_table(inputs), caption))
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
    verdict += _diagnostics_aside(inputs)
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
    # The backend the pieces ran on (local or ray, as resolved from --backend auto), from the invocation's
    # record in stages.json; an invocation that did not record it gets a note instead of a guess.
    backend = last.get("backend")
    # Whether the pieces ran as populations (resolved: `auto` is on on CUDA only), so that the same command
    # on another machine batches the same way; older records have no such key.
    population, size = last.get("population"), last.get("population_size")
    cmd = (
        f"robust-glo benchmark {ref}"
        + (f" --variant {variant}" if variant else "")
        + (f" --backend {backend}" if backend else "")
        + (f" --population {population}" if population else "")
        + (f" --population-size {size}" if population == "on" and size else "")
        + f" --out {last.get('out') or inputs.root}"
    )
    unrecorded = (
        ""
        if backend
        else "; stages.json does not record the backend it ran on: add --backend local or --backend ray as it ran"
    )
    section.add(
        Paragraph(
            f"Made with `{cmd}` ({len(runs)} invocation(s){unrecorded}); rebuild this report from the "
            f"results alone with `robust-glo report {inputs.root}`." + _latest_invocation(env)
        )
    )
    code = env.get("code_version") or {}
    precision = env.get("precision") or {}
    if code.get("commit") or precision:
        state = {True: " (with uncommitted changes)", False: " (a clean working tree)"}.get(code.get("dirty"), "")
        parts = (
            [f"code of the latest invocation: robust-glo commit {code['commit']}{state}"] if code.get("commit") else []
        )
        if isinstance(precision, dict) and precision:
            parts.append("precision: " + ", ".join(f"{stage} {p}" for stage, p in precision.items()))
        sentence = _and(parts)
        section.add(Paragraph(sentence[0].upper() + sentence[1:] + " (environment.json)."))
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
                f"; evolution{' ' + n if n else ''} " + _evolution_seeds(o)
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
                "themselves (candidate trainings, trained networks, attack evaluations; not the attack "
                "stage's diagnostics and transfer crafting, which also run in its pieces), wherever and "
                "whenever they ran: with k pieces in parallel, wall time is about 1/k of it, or more where "
                "the diagnostics are a large part." + load,
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


_and = V.and_list


def _latest_invocation(env: dict[str, Any]) -> str:
    """ " The latest invocation (...) started T and was typed as `...`.": environment.json is rewritten by
    every invocation, so its time, command line, commit and precision are the latest invocation's."""
    created, argv = env.get("created"), env.get("argv")
    if not created and not argv:
        return ""
    said = ([f"started {created}"] if created else []) + ([f"was typed as `{_typed(argv)}`"] if argv else [])
    return " The latest invocation (environment.json is rewritten by each) " + " and ".join(said) + "."


def _typed(argv: list[Any]) -> str:
    """An invocation's argv as the command a user types: the program (python -m robust_glo's
    __main__.py, or the robust-glo script) as `robust-glo`, the arguments shell-quoted."""
    words = [str(a) for a in argv]
    return shlex.join(["robust-glo", *words[1:]]) if words else ""


def _evolution_seeds(config: dict[str, Any]) -> str:
    """ "seed 4", or with `searches = K` "seeds 4 to 6 (3 searches)"."""
    seed, k = int(config.get("seed", 0) or 0), int(config.get("searches", 1) or 1)
    return f"seed {seed}" if k <= 1 else f"seeds {seed} to {seed + k - 1} ({k} searches)"


def _compact_json(data: dict[str, Any]) -> str:
    """JSON with one top-level key per line (nested values on the same line)."""
    lines = [f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in data.items()]
    return "{\n" + ",\n".join(lines) + "\n}"
