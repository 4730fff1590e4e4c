"""Reports from a small synthetic results table: sections, numbers, well-formed HTML, embedded figures."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from synthetic_results import ATTACKS, DIVERGED, EPS, LOSSES, SEEDS, UNRELIABLE, write_synthetic

from robust_glo.cli import main
from robust_glo.errors import ConfigError
from robust_glo.reporting import build_report
from robust_glo.reporting.figures import robust_accuracy_figure
from robust_glo.robustness.attacks import display_name
from robust_glo.robustness.checks import EXPLANATIONS

SECTIONS = [
    "Summary",
    "Robust accuracy against ε",
    "Statistics",
    "Evolution",
    "Loss analysis",
    "Reliability checks",
    "Reproducibility",
]
LABELS = {LOSSES[0]: "ce", LOSSES[1]: "label_smoothing:0.1", LOSSES[2]: "taylorglo (evolved)"}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    results = write_synthetic(root)
    paths = build_report(root)
    return root, results, paths


def _headline_rows(md: str) -> dict[str, list[str]]:
    """The summary table of report.md: loss label -> cells."""
    block = md.split("## Summary", 1)[1].split("## ", 1)[0]
    first = block.split("| loss |", 1)[1].split("\n\n", 1)[0]  # the first table only
    rows = [line for line in ("| loss |" + first).splitlines() if line.startswith("| ")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    out = {"__header__": header}
    for line in rows[1:]:
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        out[cells[0]] = cells[1:]
    return out


def _expected_cell(summary_row: pd.Series) -> str:
    """The cell from summary.csv's numbers: mean [interval] in %, marks from the adjusted p (alpha 0.05)."""
    text = f"{100 * summary_row['mean']:.1f} [{100 * summary_row['ci_low']:.1f}, {100 * summary_row['ci_high']:.1f}]"
    if summary_row["loss"] != "ce" and summary_row["p_adjusted"] < 0.05:
        text += " ↑*" if summary_row["diff"] > 0 else " ↓*"
    return text


def test_every_section_present_in_both_formats(report):
    root, _, paths = report
    md = paths.markdown.read_text()
    html = paths.html.read_text()
    for title in SECTIONS:
        assert f"\n## {title}\n" in md, title
        assert f"<h2>{title}</h2>" in html, title
    for name in ("report.md", "report.html", "summary.csv"):
        assert (root / name).is_file()
    # Every in-page link of the Markdown (the contents line, cross-references) has its anchor in the file.
    targets = set(re.findall(r"\]\(#([^)]+)\)", md))
    anchors = set(re.findall(r'<a id="([^"]+)"></a>', md))
    assert targets and targets <= anchors, targets - anchors


def test_headline_numbers_match_the_results_table(report):
    root, results, paths = report
    summary = pd.read_csv(root / "summary.csv")
    rows = _headline_rows(paths.markdown.read_text())
    header = rows["__header__"]
    names = {"FGSM": "fgsm", "PGD-10": "pgd:steps=10", "worst case": "worst"}  # readable names in headers
    assert [names[display_name(a)] for a in ATTACKS] == ATTACKS
    expected_cols = (
        ["loss", "clean accuracy (%)"]
        + [f"{display_name(a)} ε={e:g} (%)" for a in ATTACKS for e in EPS if e > 0]
        + [f"worst case ε={e:g} (%)" for e in EPS if e > 0]
    )
    assert header == expected_cols
    for loss in LOSSES:
        label = LABELS[loss]
        assert label in rows, (label, list(rows))
        cells = rows[label]
        for col, cell in zip(header[1:], cells):
            attack, eps = (
                ("clean", 0.0)
                if col.startswith("clean")
                else (col.split(" ε=")[0], float(col.split("ε=")[1].split()[0]))
            )
            attack = names.get(attack, attack)
            sel = results[(results.attack == attack) & (results.eps == eps) & (results.status == "ok")]
            row = summary[(summary.loss == loss) & (summary.attack == attack) & np.isclose(summary.eps, eps)].iloc[0]
            assert row["mean"] == pytest.approx(sel[sel.loss == loss]["accuracy"].mean(), abs=1e-12)
            assert row["interval"] == "bootstrap: seeds and images"
            assert row["ci_low"] <= row["mean"] <= row["ci_high"]
            unreliable = loss == UNRELIABLE[0]
            assert cell == _expected_cell(row) + (" ⚠" if unreliable else ""), (loss, col)


def test_summary_csv_matches_the_results_table(report):
    root, results, _ = report
    summary = pd.read_csv(root / "summary.csv")
    for (loss, attack, eps), g in results.groupby(["loss", "attack", "eps"]):
        row = summary[(summary.loss == loss) & (summary.attack == attack) & np.isclose(summary.eps, eps)]
        assert len(row) == 1
        assert row["mean"].iloc[0] == pytest.approx(g["accuracy"].mean(), abs=1e-12)
        assert int(row["n_seeds"].iloc[0]) == len(SEEDS)
        assert bool(row["reliable"].iloc[0]) == (loss != UNRELIABLE[0])


def test_diverged_networks_are_listed_not_counted(report):
    _, results, paths = report
    assert results[(results.loss == DIVERGED[0]) & (results.seed == DIVERGED[1])]["accuracy"].isna().all()
    md = paths.markdown.read_text()
    summary = md.split("## Summary", 1)[1].split("\n## ", 1)[0]
    assert (
        f"1 training run(s) did not finish and are missing from the statistics: "
        f"{LABELS[DIVERGED[0]]} seed {DIVERGED[1]} (diverged)."
    ) in summary
    assert (
        f"1 evaluation(s) (loss × seed) failed a reliability check: {LABELS[UNRELIABLE[0]]} seed "
        f"{UNRELIABLE[1]}." in summary
    )
    assert "⚠" not in "".join(_headline_rows(md)[LABELS[DIVERGED[0]]])


def test_reliability_flags_explained_and_located(report):
    _, _, paths = report
    md = paths.markdown.read_text()
    section = md.split("## Reliability checks", 1)[1].split("\n## ", 1)[0]
    # the code's current words for every check it knows, not the text stored with older results
    for check in ("eps0_equals_clean", "monotone_in_eps", "pgd_le_fgsm", "zero_gradients"):
        assert EXPLANATIONS[check] in section and f"plain-language meaning of {check}" not in section
    pgd_row = next(line for line in section.splitlines() if line.startswith("| pgd_le_fgsm"))
    cells = [c.strip() for c in pgd_row.strip("|").split(" | ")]
    n_eval = len(LOSSES) * len(SEEDS)
    assert cells[1:4] == [str(n_eval - 1), "1", "0"]
    assert cells[4] == f"{LABELS[UNRELIABLE[0]]} seed {UNRELIABLE[1]}"
    assert "pgd:steps=10 0.5000 > fgsm 0.4700" in section


def test_evolution_and_analysis_sections_reflect_their_files(report):
    root, _, paths = report
    md = paths.markdown.read_text()
    history = pd.read_csv(root / "evolve" / "history.csv")
    evo = md.split("## Evolution", 1)[1].split("\n## ", 1)[0]
    total, rejected = len(history), int((history.status == "rejected").sum())
    assert f"evaluated {total} candidates over {history.generation.nunique()} generations" in evo
    assert f"rejected {rejected} ({rejected / total:.0%})" in evo
    for gen, g in history.groupby("generation"):
        trained = g[g.status == "trained"]["fitness"]
        line = next(row for row in evo.splitlines() if row.startswith(f"| {gen} |"))
        assert f"| {trained.min():.4f} | {trained.median():.4f} |" in line
    rows = [row for row in evo.splitlines() if row.startswith("| 0 | 2 |") or row.startswith("| 1 | 2 |")]
    assert rows == [
        "| 0 | 2 | 0 | [0.00, 0.10, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70] | 0.2000 | 0.3100 | 2 |  |",
        "| 1 | 2 | 1 | [0.50, 0.60, 0.70, 0.80, 0.90, 1.00, 1.10, 1.20] | 0.2500 | 0.2700 | 2 | yes |",
    ]
    ana = md.split("## Loss analysis", 1)[1].split("\n## ", 1)[0]
    assert "| ce | 10 | none (pursues p → 1) | — | yes | — |" in ana
    assert "| taylorglo (evolved) | 10 | 0.7321 | 0.2977 | yes | pass / pass |" in ana


def test_reproducibility_lists_stages_versions_hardware(report):
    _, _, paths = report
    md = paths.markdown.read_text()
    rep = md.split("## Reproducibility", 1)[1]
    assert "| evolve | done | 12.5 | 30.2 |" in rep or "| evolve | done | 12.5 | 30.3 |" in rep
    assert "| total |  | 52.5 | 110.2 |" in rep or "| total |  | 52.5 | 110.3 |" in rep
    assert "| torch | 9.9.9 |" in rep and "| cpu_count | 2 |" in rep
    # Compute summed over the pieces: 18 candidates x 1.5 s + 4 re-evaluations x 1.0 s.
    assert "| evolve | done | 12.5 | 30.2 | 31.0 |" in rep or "| evolve | done | 12.5 | 30.3 | 31.0 |" in rep
    # The command is the last invocation's; a killed earlier one is listed as such.
    assert "Made with `robust-glo benchmark tiny --out runs/tiny` (2 invocation(s); stages.json does not record " in rep
    assert "| 2025-01-01T00:00:00+00:00 | — | killed (no end recorded) | a.toml | train |" in rep
    assert "Seeds: training 0, 1, 2" in rep and "evolution seed 4" in rep


def test_the_reproducibility_command_names_the_backend_it_ran_on(report):
    """The command reproduces the run: the backend the last invocation ran on (stages.json's record, as
    resolved from --backend auto), between the variant and --out; the invocations table shows each one's."""
    import json

    from robust_glo.reporting.build import _reproducibility_section
    from robust_glo.reporting.inputs import load_inputs
    from robust_glo.reporting.render import Paragraph, Table

    root, _, _ = report
    inputs = load_inputs(root)
    inputs.stages = json.loads(json.dumps(inputs.stages))  # a copy: the module's report stays as written
    for backend in ("ray", "local"):
        inputs.stages["invocations"][-1]["backend"] = backend
        section = _reproducibility_section(inputs)
        made = next(b.text for b in section.blocks if isinstance(b, Paragraph) and b.text.startswith("Made with"))
        assert made.startswith(f"Made with `robust-glo benchmark tiny --backend {backend} --out runs/tiny` (2 ")
        assert "not record" not in made
        table = next(b.frame for b in section.blocks if isinstance(b, Table) and "backend" in b.frame.columns)
        assert list(table["backend"]) == ["—", backend]
    # and whether the pieces ran as populations, as resolved (auto is on only on CUDA)
    inputs.stages["invocations"][-1] |= {"backend": "local", "population": "on", "population_size": 8}
    section = _reproducibility_section(inputs)
    made = next(b.text for b in section.blocks if isinstance(b, Paragraph) and b.text.startswith("Made with"))
    assert made.startswith(
        "Made with `robust-glo benchmark tiny --backend local --population on --population-size 8 --out runs/tiny`"
    )


class _StrictHTML(HTMLParser):
    """Fails on mismatched or unclosed tags; collects ids, internal links and image sources."""

    VOID = {"meta", "img", "br", "hr", "link", "input", "source", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.ids: list[str] = []
        self.links: list[str] = []
        self.images: list[str] = []
        self.doctype = False

    def handle_decl(self, decl):
        self.doctype = decl.lower() == "doctype html"

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "a":
            self.links.append(a.get("href", ""))
        if tag == "img":
            self.images.append(a.get("src", ""))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()


def test_html_is_well_formed_and_self_contained(report):
    _, _, paths = report
    text = paths.html.read_text()
    parser = _StrictHTML()
    parser.feed(text)
    parser.close()
    assert parser.doctype and not parser.errors and not parser.stack, (parser.errors, parser.stack)
    assert len(parser.ids) == len(set(parser.ids))
    for href in parser.links:  # within the page, or the project's documentation pages
        assert (href.startswith("#") and href[1:] in parser.ids) or re.fullmatch(r"(\.\./)+docs/\w+\.md", href), href
    assert not re.search(r'src="(?!data:)', text)  # nothing loaded from outside the file


def test_every_figure_is_embedded(report):
    root, _, paths = report
    parser = _StrictHTML()
    parser.feed(paths.html.read_text())
    pngs = sorted((root / "figures").glob("*.png")) + sorted((root / "analysis" / "figures").glob("*.png"))
    names = {p.stem for p in pngs}
    assert {"robust_accuracy", "per_seed", "evolution", "effective_target", "learning_rule"} <= names
    embedded = [base64.b64decode(src.split(",", 1)[1]) for src in parser.images]
    assert all(src.startswith("data:image/png;base64,") for src in parser.images)
    assert sorted(embedded) == sorted(p.read_bytes() for p in pngs)
    md = paths.markdown.read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert sorted((root / link).resolve() for link in links) == sorted(p.resolve() for p in pngs)


def test_report_from_results_alone(tmp_path):
    write_synthetic(tmp_path, optional=False)
    paths = build_report(tmp_path)
    md = paths.markdown.read_text()
    assert "## Summary" in md and "## Evolution" not in md and "## Loss analysis" not in md
    assert "No reliability checks were recorded" in md
    assert "| taylorglo[0.10, -0.20, 0.30, 0.40, -0.50, 1.50, 0.20, -0.30] |" in md


def test_cli_report_and_its_errors(tmp_path, capsys):
    write_synthetic(tmp_path / "b", optional=False)
    assert main(["report", str(tmp_path / "b"), "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "report.html").is_file() and (tmp_path / "r" / "figures" / "robust_accuracy.png").is_file()
    capsys.readouterr()
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "results.csv" in err
    pd.DataFrame({"loss": ["ce"], "accuracy": [0.5]}).to_csv(tmp_path / "empty" / "results.csv", index=False)
    with pytest.raises(ConfigError, match="lacks column"):
        build_report(tmp_path / "empty")


def test_publish_copies_the_inputs_but_no_weights(tmp_path):
    src, pub = tmp_path / "bench", tmp_path / "pub"
    write_synthetic(src)
    weights = src / "compare" / "runs" / "ce" / "seed0" / "model.pt"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"weights")
    paths = build_report(src, pub)
    assert paths.html.parent == pub and not list(pub.rglob("*.pt")) and not (pub / "compare").exists()
    for name in (
        "results.csv",
        "flags.csv",
        "suite.json",
        "stages.json",
        "evolve/history.csv",
        "analysis/analysis.json",
        "analysis/figures/learning_rule.png",
    ):
        assert (pub / name).is_file(), name
    first = paths.markdown.read_text()
    assert "![learning_rule](analysis/figures/learning_rule.png)" in first
    assert build_report(pub).markdown.read_text() == first  # `robust-glo report pub` rebuilds it


def test_statistics_table_lists_every_cell_once(report):
    _, results, paths = report
    stats_md = paths.markdown.read_text().split("## Statistics", 1)[1].split("\n## ", 1)[0]
    table = [row for row in stats_md.splitlines() if row.startswith("| ") and not row.startswith("| attack")]
    table = [row for row in table if row.split(" | ")[0] in ("| clean", "| FGSM", "| PGD-10", "| worst case")]
    ok = results[results.status == "ok"]
    cells = ok[(ok.attack == "clean") | (ok.eps > 0)]
    assert len(table) == len(cells.drop_duplicates(["loss", "attack", "eps"]))
    assert not [row for row in table if row.split(" | ")[1] == "0" and not row.startswith("| clean")]


def test_cells_show_the_interval_and_marks_from_the_adjusted_p():
    from robust_glo.reporting.tables import cell, diff_cell

    row = pd.Series(
        {
            "mean": 0.034,
            "ci_low": 0.0,
            "ci_high": 0.133,
            "p_value": 0.01,
            "p_adjusted": 0.08,
            "significant": False,
            "compared": True,
            "diff": -0.07,
            "diff_ci_low": -0.15,
            "diff_ci_high": 0.004,
            "reliable": True,
        }
    )
    assert cell(row) == "3.4 [0.0, 13.3]"  # raw p < 0.05, but not after the correction: no mark
    assert diff_cell(row) == "-7.0 [-15.0, +0.4] p=0.080"
    row = row.copy()
    row.update(
        {
            "mean": 0.5,
            "ci_low": 0.45,
            "ci_high": 0.55,
            "p_adjusted": 0.0004,
            "significant": True,
            "diff": 0.1,
            "diff_ci_low": 0.05,
            "diff_ci_high": 0.15,
            "reliable": False,
        }
    )
    assert cell(row) == "50.0 [45.0, 55.0] ↑* ⚠"
    assert diff_cell(row) == "+10.0 [+5.0, +15.0] p=4.0e-04*"


def test_a_floored_p_is_a_bound_below_1_and_plain_at_1():
    from robust_glo.reporting.evidence import _p
    from robust_glo.reporting.tables import diff_cell, fmt_p
    from robust_glo.reporting.verdict import p_text

    row = {"diff": -0.006, "diff_ci_low": -0.075, "diff_ci_high": 0.015, "p_at_floor": True, "significant": False}
    assert fmt_p(1e-12, True) == "≤1.0e-12"
    assert diff_cell(pd.Series({**row, "p_adjusted": 2e-11})) == "-0.6 [-7.5, +1.5] p≤2.0e-11"
    assert p_text({**row, "p_adjusted": 2e-11}) == "adjusted p ≤ 2e-11"
    # A sign-test floor that Holm multiplied up to 1 bounds nothing: it reads as p = 1.
    assert fmt_p(1.0, True) == "1.000"
    assert diff_cell(pd.Series({**row, "p_adjusted": 1.0})) == "-0.6 [-7.5, +1.5] p=1.000"
    assert p_text({**row, "p_adjusted": 1.0}) == "adjusted p = 1.000"
    assert _p({**row, "p_adjusted": 1.0}) == "1.000"


def test_unverified_worst_case_points_are_hollow(report):
    root, results, paths = report
    summary = pd.read_csv(paths.summary)
    losses = list(LABELS)
    verified = {("linf", 0.05): True, ("linf", 0.1): False}
    fig = robust_accuracy_figure(summary, LABELS, losses, results, "ce", verified=verified)
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_visible() and ax.get_title()}
    worst = panels["worst case over attacks (per sample)"]
    hollow = [line for line in worst.get_lines() if line.get_gid() == "unverified"]
    assert len(hollow) == len(losses)  # one per loss, at ε = 0.1 only
    for line in hollow:
        assert np.asarray(line.get_xdata()).tolist() == [0.1] and line.get_markerfacecolor() == "white"
    for title, ax in panels.items():  # the per-attack panels are no worst case: nothing hollow there
        if ax is not worst:
            assert not [line for line in ax.get_lines() if line.get_gid() == "unverified"], title
    assert "hollow markers = not AutoAttack-verified" in fig.get_suptitle()
    # without coverage nothing is known, so nothing is drawn hollow (and the title says nothing of it)
    plain = robust_accuracy_figure(summary, LABELS, losses, results, "ce")
    assert not [line for ax in plain.axes for line in ax.get_lines() if line.get_gid() == "unverified"]
    assert "hollow" not in plain.get_suptitle()
    # the report's caption says what a hollow marker is
    section = paths.markdown.read_text().split("## Robust accuracy against ε", 1)[1].split("\n## ", 1)[0]
    assert "a hollow marker is a budget whose worst case does not include the full AutoAttack ensemble" in section


def test_the_reproducibility_section_names_the_commit_and_the_precision(report):
    from robust_glo.reporting.build import _reproducibility_section
    from robust_glo.reporting.inputs import load_inputs
    from robust_glo.reporting.render import Paragraph

    root, _, _ = report
    inputs = load_inputs(root)
    inputs.environment = dict(inputs.environment or {}) | {
        "code_version": {"commit": "a644ee7", "dirty": False},
        "precision": {"train": "fp32", "attack": "fp32"},
    }
    texts = [b.text for b in _reproducibility_section(inputs).blocks if isinstance(b, Paragraph)]
    assert (
        "Code of the latest invocation: robust-glo commit a644ee7 (a clean working tree) and precision: train fp32, "
        "attack fp32" in " ".join(texts)
    )
    inputs.environment["code_version"]["dirty"] = True
    texts = [b.text for b in _reproducibility_section(inputs).blocks if isinstance(b, Paragraph)]
    assert "commit a644ee7 (with uncommitted changes)" in " ".join(texts)


def test_the_reproducibility_section_quotes_the_latest_invocation_as_typed(report):
    from robust_glo.reporting.build import _reproducibility_section
    from robust_glo.reporting.inputs import load_inputs
    from robust_glo.reporting.render import Paragraph

    root, _, _ = report
    inputs = load_inputs(root)
    argv = ["/src/robust_glo/__main__.py", "benchmark", "tiny", "--out", "runs/my tiny", "--no-progress"]
    inputs.environment = dict(inputs.environment or {}) | {"argv": argv, "created": "2026-11-30T06:33:00+00:00"}
    made = next(b.text for b in _reproducibility_section(inputs).blocks if isinstance(b, Paragraph))
    assert (
        "The latest invocation (environment.json is rewritten by each) started 2026-11-30T06:33:00+00:00 and was "
        "typed as `robust-glo benchmark tiny --out 'runs/my tiny' --no-progress`." in made
    )


def test_a_second_build_without_redraw_keeps_the_figures(tmp_path):
    """The benchmark builds the report twice (the second adds the report stage's own time): the second
    build rewrites the text and keeps every figure file; a missing figure is still drawn."""
    write_synthetic(tmp_path)
    paths = build_report(tmp_path)
    pngs = {p: p.read_bytes() for p in paths.figures}
    for p in pngs:
        p.write_bytes(b"kept")  # a marker a redraw would overwrite
    paths.markdown.write_text("stale")
    missing = paths.figures[0]
    missing.unlink()
    again = build_report(tmp_path, redraw=False)
    assert again.markdown.read_text().startswith("#") and again.markdown.read_text() != "stale"
    assert missing.read_bytes() == pngs[missing]  # drawn again, as it was
    assert all(p.read_bytes() == b"kept" for p in pngs if p != missing)
    build_report(tmp_path)  # redraw (the default) draws every figure
    assert all(p.read_bytes() == data for p, data in pngs.items())
