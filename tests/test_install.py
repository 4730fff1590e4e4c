"""robust-glo as an installed package: the shipped suites are package data, found through
importlib.resources from any folder, and a wheel built from this checkout carries them (`--version` too)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from importlib import resources
from importlib.metadata import version
from pathlib import Path

import pytest
from test_docs_snippets import LINKED, RUNNER, pin_to_one_core, python_blocks  # tests/, on sys.path under pytest

import robust_glo
from robust_glo.benchmark import list_suites, load_suite, suite_path
from robust_glo.cli import main
from robust_glo.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = [
    "cifar10-allcnnc",
    "cifar10-resnet20",
    "fashion-mnist-full",
    "fashion-mnist-standard",
    "mnist",
    "quick",
]
# What a wheel is built from (pyproject.toml's readme is README.md); copied so the checkout gets no build/.
SOURCES = ("pyproject.toml", "README.md", "robust_glo")


def test_the_shipped_suites_are_package_resources(tmp_path, monkeypatch):
    package = resources.files("robust_glo.suites")
    assert sorted(f.name for f in package.iterdir() if f.name.endswith(".toml")) == [f"{n}.toml" for n in SHIPPED]
    monkeypatch.chdir(tmp_path)  # found by name from any folder, not from the working directory
    assert list_suites() == SHIPPED
    for name in SHIPPED:
        assert suite_path(name).read_bytes() == package.joinpath(f"{name}.toml").read_bytes()
    suite = load_suite("quick")
    assert suite.ref == "quick" and Path(suite.source) == Path(robust_glo.__file__).parent / "suites" / "quick.toml"


def test_the_evaluations_links_read_the_shipped_files(monkeypatch):
    monkeypatch.chdir(ROOT)  # a path argument reads that file, shown as given
    for name in SHIPPED:
        link = Path("evaluations", f"{name}.toml")
        assert link.resolve() == (ROOT / "robust_glo" / "suites" / f"{name}.toml").resolve()
        assert load_suite(link).source == str(link)
    assert load_suite("evaluations/quick.toml", "digits").name == "quick-digits"


def test_a_missing_suite_file_names_the_shipped_suite(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^suite file 'evaluations/quick.toml' does not exist; the shipped suite "):
        load_suite("evaluations/quick.toml")
    with pytest.raises(ConfigError, match=r"^suite file 'mine.toml' does not exist$"):
        load_suite("mine.toml")
    with pytest.raises(ConfigError, match=r"^unknown suite 'quik'; valid: cifar10-allcnnc, .*, quick, or a path"):
        load_suite("quik")


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out == f"robust-glo {version('robust-glo')}\n"


# ---- torchattacks: installed apart, never a dependency ------------------------------------------------------
def _requirement_names(lines) -> list[str]:
    return [re.split(r"[\s<>=~!;\[]", line.strip(), maxsplit=1)[0].lower() for line in lines if line.strip()]


def test_torchattacks_is_installed_apart_everywhere_the_same_way():
    """torchattacks 3.5.1 pins requests~=2.25.1: as a dependency it would downgrade requests (and make pip
    backtrack with [tracking]). So it is in none of the package's dependency lists nor requirements.txt, and
    every place that installs it says the same command, the one a missing torchattacks names."""
    from robust_glo.robustness.attacks import TORCHATTACKS_INSTALL
    from robust_glo.utils.parsing import read_toml

    project = read_toml(ROOT / "pyproject.toml")["project"]
    listed = [*project["dependencies"], *(d for extra in project["optional-dependencies"].values() for d in extra)]
    assert "torchattacks" not in _requirement_names(listed)
    requirements = [line for line in (ROOT / "requirements.txt").read_text().splitlines() if not line.startswith("#")]
    assert "torchattacks" not in _requirement_names(requirements)
    assert TORCHATTACKS_INSTALL == "pip install --no-deps torchattacks==3.5.1"
    assert version("torchattacks") == "3.5.1"  # what this environment runs, as installed by the bootstrap
    bootstrap = (ROOT / "scripts" / "bootstrap.sh").read_text()
    assert '-m pip install -q --no-deps "torchattacks==3.5.1"' in bootstrap
    assert bootstrap.index("-r requirements.txt") < bootstrap.index("torchattacks==3.5.1") < bootstrap.index("-e .")
    readme = (ROOT / "README.md").read_text()
    assert TORCHATTACKS_INSTALL in readme and "not among the package's dependencies" in readme
    # The README's two commands set everything up themselves (CI runs `make lint` and `make test`).
    makefile = (ROOT / "Makefile").read_text()
    for target in ("quick", "test", "lint"):
        assert f"\n{target}: setup" in makefile, target
    assert "bash scripts/bootstrap.sh" in makefile
    assert "make lint" in (ROOT / ".ci" / "run").read_text() and "make test" in (ROOT / ".ci" / "run").read_text()


def test_a_missing_torchattacks_is_one_line_naming_the_install_command(tmp_path, monkeypatch, capsys):
    """Without torchattacks, the attacks that run through it are refused before any work (API: a
    MissingDependencyError; CLI: one line, exit code 2) and the rest works (FGSM is robust-glo's own)."""
    import torch

    from robust_glo import evaluate_model
    from robust_glo.errors import MissingDependencyError, RobustGloError

    monkeypatch.setitem(sys.modules, "torchattacks", None)  # `import torchattacks` fails as when not installed
    words = "torchattacks is not installed; this attack runs through it: install it with `pip install --no-deps "
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    images, labels = torch.rand(8, 1, 8, 8), torch.arange(8) % 10
    with pytest.raises(MissingDependencyError, match=r"^attack 'pgd': " + words.replace("(", r"\(")) as exc:
        evaluate_model(net, images, labels, attacks=["fgsm", "pgd"], eps=[0.1])
    assert isinstance(exc.value, RobustGloError) and isinstance(exc.value, ImportError)
    assert "torchattacks==3.5.1`" in str(exc.value) and "\n" not in str(exc.value)
    assert set(evaluate_model(net, images, labels, attacks=["fgsm"], eps=[0.1])["attack"]) >= {"fgsm"}

    monkeypatch.chdir(tmp_path)
    for argv in (
        ["evaluate", "--dataset", "digits", "--loss", "ce", "--attacks", "fgsm,apgd-ce", "--out", "E"],
        ["benchmark", "quick", "--variant", "digits", "--out", "B"],
        ["evolve", "--dataset", "digits", "--fitness", "pgd:0.1", "--out", "V"],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("robust-glo: error: attack '") and words in err and err.count("\n") == 1, err
    assert not any((tmp_path / name).exists() for name in ("E", "B", "V"))  # refused before any work
    assert main(["benchmark", "quick", "--variant", "digits", "--check"]) == 0  # the plan needs no attack


def _build_wheel(tmp_path: Path) -> Path:
    """The wheel built from a copy of the sources (so that the checkout gets no build/ folder)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", str(src), "-w", str(tmp_path / "dist")]
    subprocess.run(build, check=True, capture_output=True, text=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("robust_glo-*.whl")
    return wheel


def test_a_wheel_installed_outside_the_checkout_runs_the_quick_suite_check(tmp_path):
    """Build the wheel from a copy of the sources, install it into a folder of its own, and run it from a
    third folder with only that folder in front of the environment's packages: the checkout's editable
    install (a finder appended to sys.meta_path) comes after it, so the wheel's copy is what is imported."""
    wheel = _build_wheel(tmp_path)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    with zipfile.ZipFile(wheel) as archive:
        (meta,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        requires = [
            line.split(":", 1)[1]
            for line in archive.read(meta).decode().splitlines()
            if line.startswith("Requires-Dist:")
        ]
    assert "torch" in _requirement_names(requires) and "torchattacks" not in _requirement_names(requires)
    site = tmp_path / "site"
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)], check=True, timeout=300
    )

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = os.environ | {"PYTHONPATH": str(site)}

    def run(*args: str) -> str:
        proc = subprocess.run(args, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    where = run(sys.executable, "-c", "import robust_glo; print(robust_glo.__file__)")
    assert Path(where.strip()) == site / "robust_glo" / "__init__.py"
    script = site / "bin" / "robust-glo"  # the console script pip wrote for the wheel
    assert run(str(script), "--version") == f"robust-glo {version('robust-glo')}\n"
    plan = run(str(script), "benchmark", "quick", "--check")
    assert plan.startswith(f"suite fashion-mnist-quick from {site / 'robust_glo' / 'suites' / 'quick.toml'}\n")
    assert "variants: digits" in plan
    assert run(sys.executable, "-m", "robust_glo", "benchmark", "quick", "--variant", "digits", "--check").startswith(
        "suite quick-digits (variant digits) from "
    )

    # The README's Python blocks, as written, against the installed wheel (tests/test_docs_snippets.py runs
    # the docs/ pages against the checkout).
    for name in LINKED:
        (elsewhere / name).symlink_to(ROOT / name, target_is_directory=True)
    blocks = python_blocks(ROOT / "README.md")
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER],
        input=json.dumps(blocks),
        cwd=elsewhere,
        env=env | {"MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=pin_to_one_core,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.count("ran README.md:") == len(blocks) >= 4


@pytest.mark.slow
def test_a_fresh_venv_with_the_wheel_and_its_dependencies_runs_the_readme(tmp_path):
    """What a new user does: a new virtual environment, `pip install <wheel>` with its dependencies from the
    package index (no `[ray]`, no `[tracking]`), torchattacks apart, then the README's Python blocks from
    another folder on every core (on a multi-core CPU `auto` once picked Ray, which such an install lacks)."""
    wheel = _build_wheel(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    vpip = [str(python), "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    subprocess.run([*vpip, "install", str(wheel)], check=True, timeout=1200)
    subprocess.run([*vpip, "install", "--no-deps", "torchattacks==3.5.1"], check=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    no_ray = subprocess.run([str(python), "-c", "import ray"], cwd=elsewhere, capture_output=True, timeout=120)
    assert no_ray.returncode != 0  # the optional extra is not there
    for name in LINKED:
        (elsewhere / name).symlink_to(ROOT / name, target_is_directory=True)
    blocks = python_blocks(ROOT / "README.md")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run(
        [str(python), "-c", RUNNER],
        input=json.dumps(blocks),
        cwd=elsewhere,
        env=env | {"MPLBACKEND": "Agg"},
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.count("ran README.md:") == len(blocks) >= 4
