"""The package's layering, read from the source with `ast` (nothing is imported):

- the project's own imports sit at the top of each module, so that its header shows what it depends on; an
  import inside a function is allowed only where `FUNCTION_IMPORTS` says why;
- no import goes up the layers (`LAYERS`): a package imports only from lower layers and from itself;
- the module-level imports have no cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "robust_glo"

# Low to high. A package imports from lower layers only; packages of one layer do not import each other.
# "robust_glo" is the package's own __init__ (re-exports of the api and the registries).
LAYERS = [
    ("errors", "suites"),  # suites: the shipped suite files (package data, no code)
    ("utils",),
    ("data",),
    ("models", "losses"),
    ("training",),
    ("analysis", "robustness"),
    ("evolution", "comparison"),
    ("tracking", "reporting"),
    ("benchmark",),
    ("api",),
    ("robust_glo",),
    ("cli",),
    ("__main__",),
]
RANK = {package: rank for rank, names in enumerate(LAYERS) for package in names}

_CLI = "lazy: every subcommand module is imported to build the parser; this loads pandas (--help stays light)"
_API = "lazy: robust_glo/__init__ imports api, so what api imports at its top every robust_glo import pays"

# (importing module, imported name) -> why the import is inside a function. Everything else is at the top.
FUNCTION_IMPORTS = {
    # the CLI's start-up: `robust-glo --help` and argument errors import no pandas-heavy module
    ("robust_glo.cli.benchmark", "robust_glo.benchmark.STAGES"): _CLI,
    ("robust_glo.cli.benchmark", "robust_glo.benchmark.load_suite"): _CLI,
    ("robust_glo.cli.benchmark", "robust_glo.benchmark.run_benchmark"): _CLI,
    ("robust_glo.cli.benchmark", "robust_glo.benchmark.plan.describe"): _CLI,
    ("robust_glo.cli.benchmark", "robust_glo.robustness.attacks.require_torchattacks"): _CLI,
    ("robust_glo.cli.evaluate", "robust_glo.comparison.CompareConfig"): _CLI,
    ("robust_glo.cli.evaluate", "robust_glo.comparison.evaluate_existing"): _CLI,
    ("robust_glo.cli.evaluate", "robust_glo.comparison.run_comparison"): _CLI,
    ("robust_glo.cli.evaluate", "robust_glo.comparison.summary_table"): _CLI,
    ("robust_glo.cli.evaluate", "robust_glo.robustness.list_attacks"): _CLI,
    ("robust_glo.cli.evaluate", "robust_glo.robustness.attacks.require_torchattacks"): _CLI,
    ("robust_glo.cli.report", "robust_glo.comparison.cards.read_cards"): _CLI,
    ("robust_glo.cli.report", "robust_glo.comparison.leaderboard.CSV_FILE"): _CLI,
    ("robust_glo.cli.report", "robust_glo.comparison.leaderboard.MARKDOWN_FILE"): _CLI,
    ("robust_glo.cli.report", "robust_glo.comparison.leaderboard.write_leaderboard"): _CLI,
    ("robust_glo.cli.report", "robust_glo.reporting.build_report"): _CLI,
    ("robust_glo.cli", "robust_glo.utils.device.cpu_layout"): _CLI + " (torch: the layout check of computing commands)",
    ("robust_glo.cli.common", "robust_glo.tracking"): _CLI + " (tracking reads the comparison's layout)",
    ("robust_glo.evolution.problem", "robust_glo.robustness.attacks.require_torchattacks"): _CLI
    + " (the CLI imports evolution for its parser's defaults)",
    ("robust_glo.evolution.problem", "robust_glo.robustness.evaluate_model"): _CLI
    + " (the CLI imports evolution for its parser's defaults)",
    # an optional, slow dependency used on purpose only when asked: seaborn and matplotlib for figures
    ("robust_glo.analysis", "robust_glo.analysis.figures.plot_analyses"): "lazy: seaborn/matplotlib only to plot",
    ("robust_glo.cli.analyze", "robust_glo.analysis.figures.plot_analyses"): "lazy: seaborn/matplotlib only for --plot",
    # `import robust_glo` stays light: pycma, scipy, pandas are loaded by the stages that need them
    ("robust_glo.api", "robust_glo.evolution.EvolveConfig"): _API + " (pycma and matplotlib: 1.2 s)",
    ("robust_glo.api", "robust_glo.evolution.run_evolution"): _API + " (pycma and matplotlib: 1.2 s)",
    ("robust_glo.api", "robust_glo.benchmark.Suite"): _API + " (every stage)",
    ("robust_glo.api", "robust_glo.benchmark.load_suite"): _API + " (every stage)",
    ("robust_glo.api", "robust_glo.benchmark.run_benchmark"): _API + " (every stage)",
    ("robust_glo.api", "robust_glo.robustness.evaluate_model"): _API + " (pandas)",
    ("robust_glo.api", "robust_glo.analysis.analyze_loss"): _API + " (scipy: 0.6 s)",
}
# Packages whose function-level imports are not checked yet, with the reason.
UNCHECKED_PACKAGES: dict[str, str] = {}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    line: int
    where: str  # "top", "function" or "type-checking"
    source: str  # the module named in the statement
    names: tuple[str, ...]  # the names imported from it ("" for `import x.y`)

    def targets(self) -> list[str]:
        """The modules this import loads explicitly: the source, and each name that is a submodule of it."""
        out = [self.source]
        out += [f"{self.source}.{n}" for n in self.names if f"{self.source}.{n}" in MODULES]
        return out


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    return "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(module: str) -> Iterator[Import]:
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def walk(node: ast.AST, where: str) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            inner = where
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                inner = "function"
            elif isinstance(child, ast.If) and where == "top" and _is_type_checking(child):
                inner = "type-checking"
            if isinstance(child, ast.ImportFrom):
                source = child.module or ""
                if child.level:  # relative: resolved against the importing module's package
                    base = package.split(".")[: len(package.split(".")) - child.level + 1]
                    source = ".".join(base + ([source] if source else []))
                if source.split(".")[0] == "robust_glo":
                    yield Import(module, child.lineno, where, source, tuple(a.name for a in child.names))
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.split(".")[0] == "robust_glo":
                        yield Import(module, child.lineno, where, alias.name, ())
            yield from walk(child, inner)

    yield from walk(ast.parse(path.read_text(), filename=str(path)), "top")


IMPORTS = [imp for module in MODULES for imp in _imports(module)]


def _package(module: str) -> str:
    """The layer name of a module: its subpackage or top-level module, "robust_glo" for the package itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_every_package_has_a_layer():
    missing = sorted({_package(m) for m in MODULES} - set(RANK))
    assert not missing, f"add to LAYERS in tests/test_layering.py: {missing}"


def test_project_imports_sit_at_the_top_of_each_module():
    found = {}
    for imp in IMPORTS:
        if imp.where != "function" or any(imp.module.startswith(p) for p in UNCHECKED_PACKAGES):
            continue
        for name in imp.names or ("",):
            key = (imp.module, f"{imp.source}.{name}" if name else imp.source)
            found.setdefault(key, f"{MODULES[imp.module].relative_to(ROOT.parent)}:{imp.line}")
    unexplained = [f"{where}: {key[1]}" for key, where in sorted(found.items()) if key not in FUNCTION_IMPORTS]
    assert not unexplained, (
        "project imports inside functions: move them to the module's top, or add them with the reason to "
        "FUNCTION_IMPORTS in tests/test_layering.py:\n  " + "\n  ".join(unexplained)
    )
    stale = sorted(set(FUNCTION_IMPORTS) - set(found))
    assert not stale, f"FUNCTION_IMPORTS lists imports that are no longer inside functions: {stale}"


def test_the_allowed_function_imports_each_say_why():
    for key, reason in {**FUNCTION_IMPORTS, **{(p, ""): r for p, r in UNCHECKED_PACKAGES.items()}}.items():
        assert key[0] in MODULES, key
        assert reason.strip(), key


def test_no_import_goes_up_the_layers():
    upward = []
    for imp in IMPORTS:
        here = _package(imp.module)
        for target in imp.targets():
            there = _package(target)
            if there != here and RANK[there] >= RANK[here]:
                upward.append(f"{MODULES[imp.module].relative_to(ROOT.parent)}:{imp.line}: {here} -> {there}")
    assert not upward, "imports up (or across) the layers of LAYERS:\n  " + "\n  ".join(upward)


def _module_graph() -> dict[str, set[str]]:
    """Module-level imports as edges. An import of a package's own __init__ from inside the package counts
    only when it takes a name defined there (a submodule is loaded on demand, whatever the __init__'s state)."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for imp in IMPORTS:
        if imp.where != "top":
            continue
        for target in imp.targets():
            if target not in MODULES or target == imp.module:
                continue
            inside = imp.module.startswith(target + ".")
            if inside and target == imp.source and all(f"{target}.{n}" in MODULES for n in imp.names):
                continue
            graph[imp.module].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_module_level_imports_have_no_cycle():
    assert _cycles(_module_graph()) == []


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def f():\n    from robust_glo.data import DATASETS\n", ["function"]),
        ("from robust_glo.data import DATASETS\n", ["top"]),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from robust_glo.data import X\n", ["type-checking"]),
        ("class A:\n    def f(self):\n        import robust_glo.data\n", ["function"]),
        ("import numpy\n", []),
    ],
)
def test_imports_are_classified_by_where_they_sit(tmp_path, monkeypatch, source, expected):
    monkeypatch.setitem(MODULES, "robust_glo.__layering_probe__", tmp_path / "probe.py")
    (tmp_path / "probe.py").write_text(source)
    assert [imp.where for imp in _imports("robust_glo.__layering_probe__")] == expected
