"""Every ```python block of README.md and docs/*.md runs as written.

Nothing in a block is substituted: the blocks are written to be cheap (digits, tiny budgets). Each page's
blocks run in order in one fresh Python process, each block in a fresh namespace, as if pasted into a new
interpreter (a loss, model or dataset a block registers stays registered for the page's later blocks).
The process runs in an empty folder that links the repository's `examples/` and `reports/`, so that
paths read as from the repository's root while what the blocks write (`runs/...`) stays out of the
checkout. It is pinned to one core where the OS allows, so that the `auto` backends train in-process, as
on a one-core machine, instead of starting Ray.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINKED = ("examples", "reports")  # what the blocks read from the repository's root
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)

# Runs the blocks given as JSON on stdin: [{"file": ..., "line": ..., "code": ...}, ...]. Each is compiled
# under its page's name, shifted to its line there, so that a traceback points into the page.
RUNNER = """
import json, sys, traceback
for block in json.load(sys.stdin):
    code = "\\n" * (block["line"] - 1) + block["code"]
    try:
        exec(compile(code, block["file"], "exec"), {"__name__": "__main__"})
    except BaseException:
        traceback.print_exc()
        print(f"FAILED: the block at {block['file']}:{block['line']}", file=sys.stderr)
        sys.exit(1)
    print(f"ran {block['file']}:{block['line']}", flush=True)
"""


def python_blocks(page: Path) -> list[dict]:
    """The ```python blocks of a page: its path relative to the repository, the first code line, the code."""
    text = page.read_text()
    return [
        {"file": str(page.relative_to(ROOT)), "line": text.count("\n", 0, m.start(1)) + 1, "code": m.group(1)}
        for m in FENCE.finditer(text)
    ]


def pin_to_one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def test_the_pages_have_python_blocks():
    counts = {str(p.relative_to(ROOT)): len(python_blocks(p)) for p in PAGES}
    assert counts["README.md"] >= 4 and counts["docs/extending.md"] >= 4 and counts["docs/losses.md"] >= 3
    assert sum(counts.values()) >= 12


# README.md's blocks run against the installed wheel, from another folder (tests/test_install.py).
@pytest.mark.parametrize(
    "page", [p for p in PAGES if python_blocks(p) and p.name != "README.md"], ids=lambda p: str(p.relative_to(ROOT))
)
def test_python_blocks_run_as_written(page, tmp_path):
    for name in LINKED:
        (tmp_path / name).symlink_to(ROOT / name, target_is_directory=True)
    blocks = python_blocks(page)
    env = os.environ | {"MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER],
        input=json.dumps(blocks),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=pin_to_one_core,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.count("\nran ") + proc.stdout.startswith("ran ") == len(blocks), proc.stdout
