"""stages.json: the wall time and piece counts of each benchmark stage, over every invocation.

    {"stages": {"train": {"status": "done", "last_seconds": 41.2, "total_seconds": 80.3,
                          "pieces": {"done": 3, "reused": 12, "failed": 0}, "started": ..., "finished": ...}},
     "invocations": [{"started": ..., "finished": ..., "stages": ["evolve", "train", ...], "status": "done",
                      "out": ..., "suite": ..., "cpu_count": 2, "load_start": 1.9, "load_end": 2.1}]}

`last_seconds` is the stage's time in the latest invocation that ran it; `total_seconds` adds up every
invocation (what the results cost, a resumed run included). The file is rewritten atomically whenever a
stage starts or ends, so a crash leaves the stage "running" with the pieces it finished on disk. A file
that cannot be read (cut short from outside) is started afresh, with a "rebuilt" note saying so: it holds
only times, and the pieces themselves are judged by their own files.
"""

from __future__ import annotations

import datetime as _dt
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robust_glo.utils import atomic_write_json, read_json_or_none


def _load() -> float | None:
    """The 1-minute load average (other processes competing for the CPU inflate wall times)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class StageCounter:
    """Pieces of one stage in this invocation: computed now, reused from disk, or failed."""

    done: int = 0
    reused: int = 0
    failed: int = 0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {"done": self.done, "reused": self.reused, "failed": self.failed}


class Ledger:
    """Reads and updates `stages.json` in a benchmark directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        data = read_json_or_none(self.path, expect=dict) if self.path.is_file() else {}
        stages, invocations = (data or {}).get("stages", {}), (data or {}).get("invocations", [])
        self.data: dict[str, Any] = {
            "stages": dict(stages) if isinstance(stages, dict) else {},
            "invocations": list(invocations) if isinstance(invocations, list) else [],
        }
        if data is None:  # cut short: it only records times, so it is rebuilt rather than blocking the run
            self.data["rebuilt"] = f"{_now()}: {self.path.name} could not be read; the stage times before are lost"
        elif "rebuilt" in data:
            self.data["rebuilt"] = data["rebuilt"]
        self._invocation: dict[str, Any] | None = None

    def _save(self) -> None:
        atomic_write_json(self.path, self.data)

    def begin(self, stages: list[str], **context: Any) -> None:
        """Record a new invocation running `stages`; `context` (the suite, the output folder) is stored with it."""
        self._invocation = {
            "started": _now(),
            "finished": None,
            "stages": list(stages),
            "status": "running",
            "cpu_count": os.cpu_count(),
            "load_start": _load(),
            **context,
        }
        self.data["invocations"].append(self._invocation)
        self._save()

    def end(self, status: str) -> None:
        if self._invocation is not None:
            self._invocation.update(finished=_now(), status=status, load_end=_load())
            self._save()

    @contextmanager
    def stage(self, name: str) -> Iterator[StageCounter]:
        """Time one stage; record it as done, or failed with the error, even when the stage raises."""
        record = self.data["stages"].setdefault(name, {"total_seconds": 0.0})
        record.update(status="running", started=_now(), finished=None)
        self._save()
        counter = StageCounter()
        t0 = time.perf_counter()
        status, error = "done", None
        try:
            yield counter
        except BaseException as exc:
            status, error = ("interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"), str(exc)
            raise
        finally:
            seconds = time.perf_counter() - t0
            record.update(
                status=status,
                finished=_now(),
                last_seconds=round(seconds, 3),
                total_seconds=round(float(record.get("total_seconds", 0.0)) + seconds, 3),
                pieces=counter.as_dict(),
            )
            if error:
                record["error"] = error.splitlines()[0] if error else ""
            else:
                record.pop("error", None)
            if counter.notes:
                record["notes"] = counter.notes
            self._save()

    def seconds(self, name: str) -> float | None:
        return self.data["stages"].get(name, {}).get("last_seconds")
