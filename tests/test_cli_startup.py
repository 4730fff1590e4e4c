"""The `robust-glo` command starts without torch, so a Ctrl-C or an error while the heavy modules load is
its own one line, not a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

import robust_glo.cli as cli


def test_importing_the_command_line_loads_no_torch():
    code = "import sys, robust_glo.cli; print('torch' in sys.modules, 'pandas' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]


def test_the_public_api_still_imports_by_name():
    done = subprocess.run(
        [sys.executable, "-c", "from robust_glo import train, get_loss, RobustGloError; print(get_loss('ce'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "CrossEntropy" in done.stdout
    import robust_glo

    assert {"train", "evolve", "run_benchmark", "__version__"} <= set(dir(robust_glo))
    try:
        robust_glo.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("an unknown attribute must raise AttributeError")


def test_ctrl_c_while_the_commands_load_is_one_line(monkeypatch, capsys):
    def interrupted(name: str):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.importlib, "import_module", interrupted)  # the heavy imports happen here now
    assert cli.main(["benchmark", "quick", "--out", "x"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["robust-glo: interrupted; nothing was kept; re-run the command"]


def _loading_torch(pid: int) -> bool:
    """True once the process has mapped torch's shared library, i.e. it is inside `import torch`."""
    try:
        with open(f"/proc/{pid}/maps") as maps:
            return "libtorch" in maps.read()
    except OSError:
        return False


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs /proc to see when torch starts loading")
def test_a_real_sigint_during_start_up_is_one_line_and_exit_130():
    """SIGINT while torch and the subcommands are importing.

    The signal is sent once torch's library is mapped, not after a fixed delay: on a slow machine a fixed
    half second could land while the interpreter itself starts, before the command's handler exists (the
    case CI hit), which no program can catch."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "robust_glo", "benchmark", "quick", "--check"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not _loading_torch(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:  # pragma: no cover - a machine fast enough to finish the plan before the signal
        return
    assert proc.returncode == 130
    assert err.strip().splitlines() == ["robust-glo: interrupted; nothing was kept; re-run the command"]
