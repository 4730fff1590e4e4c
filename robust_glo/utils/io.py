"""Atomic file writes (a crash never leaves a half-written result behind), and JSON reads that name a
file that cannot be read (cut short by a copy, a full disk or a hand edit) with what to do."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from robust_glo.errors import StateFileError


def _umask() -> int:
    """The process's umask, read without changing it where the system shows it (Linux), else by setting
    and restoring it."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode of a new plain file: 0o666 less the umask (0o644 under the usual 022). mkstemp creates its
    file 0o600, which suits secrets; no file robust-glo writes holds any, so its files follow the umask
    (a file rewritten by a version that left it 0o600 is given this mode too)."""
    return 0o666 & ~_umask()


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write to a temporary file in the same folder, fsync, then rename over `path`. The file gets the mode a
    new plain file gets (`file_mode`), not mkstemp's 0o600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


DEFAULT_FIX = "restore it from a copy, or delete it and run again"
_JSON_TYPES = {dict: "object", list: "list", str: "string", int: "number", float: "number", bool: "boolean"}


def _json_type(value: Any) -> str:
    return "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)


def read_json(path: str | Path, *, expect: type | None = None, fix: str = DEFAULT_FIX) -> Any:
    """The content of the JSON file `path`.

    A file that cannot be read (cut short by a crash or a full disk, empty, not JSON, not text, or whose
    top level is not `expect`, e.g. `dict`) is a one-line `StateFileError` naming the file, what is wrong
    and `fix`, what to do. A missing file raises `FileNotFoundError` (callers check for it first).
    Files that can be rebuilt or recomputed are read with `read_json_or_none` instead.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise
    except UnicodeDecodeError:
        raise StateFileError(f"{str(path)!r} cannot be read (not text); {fix}") from None
    except OSError as exc:
        raise StateFileError(f"{str(path)!r} cannot be read ({exc.strerror or type(exc).__name__}); {fix}") from None
    if not text.strip():
        raise StateFileError(f"{str(path)!r} cannot be read (it is empty); {fix}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StateFileError(
            f"{str(path)!r} cannot be read (cut short or not JSON: {exc.msg}, line {exc.lineno} "
            f"column {exc.colno}); {fix}"
        ) from None
    if expect is not None and not isinstance(data, expect):
        raise StateFileError(
            f"{str(path)!r} cannot be read (it holds a JSON {_json_type(data)} where a JSON "
            f"{_JSON_TYPES.get(expect, expect.__name__)} is expected); {fix}"
        )
    return data


def read_json_or_none(path: str | Path, *, expect: type | None = None) -> Any:
    """The content of `path`, or None when it is missing or cannot be read (see `read_json`): for files that
    are rebuilt or recomputed when damaged (metadata, caches, the record of a finished piece)."""
    try:
        return read_json(path, expect=expect)
    except (FileNotFoundError, StateFileError):
        return None
