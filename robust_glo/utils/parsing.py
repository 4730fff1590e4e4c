"""Parsers shared by every configuration source (flags, TOML files, specs): numbers and fractions,
folder names for specs, TOML files. One implementation each, so that every place accepts the same
spellings and fails with the same kind of message."""

from __future__ import annotations

import hashlib
import math
import re
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

from robust_glo.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def parse_number(value: Any) -> float:
    """A finite number from a number or a string such as "0.05" or "8/255"; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, str):
        try:
            number = float(Fraction(value.strip()))
        except ZeroDivisionError:
            raise ValueError(value) from None
    elif isinstance(value, (int, float)):
        number = float(value)
    else:
        raise ValueError(value)
    if not math.isfinite(number):
        raise ValueError(value)
    return number


def parse_fraction_of_one(value: Any) -> float:
    """A number in [0, 1] (an eps, a share), given as a number or a fraction string; ValueError otherwise."""
    number = parse_number(value)
    if not 0.0 <= number <= 1.0:
        raise ValueError(value)
    return number


def spec_slug(spec: str, *, width: int = 40) -> str:
    """A folder name for a spec (a loss, a path): its safe characters, with a short hash of the spec when
    anything was dropped or cut, so that different specs never share a folder."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", spec).strip("_")[:width] or "x"
    return base if base == spec else f"{base}-{hashlib.sha1(spec.encode()).hexdigest()[:8]}"


def read_toml(path: str | Path) -> dict[str, Any]:
    """A TOML file as a dict; a missing file or a syntax error is a one-line `ConfigError`."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"file {str(p)!r} does not exist")
    try:
        return tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{str(p)!r} is not valid TOML ({exc})") from None


_HINTS = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,)}


def check_field_types(config: Any, *, skip: tuple[str, ...] = (), dashes: bool = False) -> None:
    """Reject dataclass field values of the wrong type (a TOML string for a number, ...) with a one-line
    `ConfigError`; only the simple annotations `str`, `int`, `float`, `bool` (optionally `| None`) are
    checked. `dashes` spells names as flags (`reeval-seeds`)."""
    import dataclasses

    for f in dataclasses.fields(config):
        kind = str(f.type).replace(" ", "")
        optional = kind.endswith("|None")
        base = kind.removesuffix("|None")
        if f.name in skip or base not in _HINTS:
            continue
        name = f.name.replace("_", "-") if dashes else f.name
        value = getattr(config, f.name)
        if value is None:
            if optional:
                continue
            raise ConfigError(f"{name} needs a value ({base})")
        ok = isinstance(value, _HINTS[base]) and not (base in ("int", "float") and isinstance(value, bool))
        if not ok:
            words = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}
            raise ConfigError(f"{name} must be {words[base]}, got {value!r}")
