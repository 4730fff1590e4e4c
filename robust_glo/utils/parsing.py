"""Parsers shared by every configuration source (the Python API, flags, TOML files, specs): numbers and
fractions, budgets, integers, folder names for specs, TOML files. One implementation each, so that every
place accepts the same spellings and fails with the same kind of message.

Values from a script are parsed here once, at the boundary, into plain Python numbers that the rest of
the code trusts: any real scalar (an int or float, a numpy scalar, a `fractions.Fraction`, a
`decimal.Decimal`, a 0-d numpy array or torch tensor) is one number; a string is read as the command line
reads it ("0.05", "8/255", and comma lists for budgets); anything else is a one-line `ConfigError` that
quotes the value.
"""

from __future__ import annotations

import dataclasses
import decimal
import hashlib
import math
import numbers
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from robust_glo.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MAX_L2 = 100.0  # L2 radii in pixel units; above this nothing of an image is left to protect
_BUDGET_HIGH = {"linf": 1.0, "l2": MAX_L2}
_BUDGET_EXAMPLE = {"linf": "0,0.05,8/255", "l2": "0.5,1"}
_BUDGET_UNITS = {
    "linf": "Linf budgets are fractions of the [0, 1] pixel range",
    "l2": "L2 radii are in pixel units of images in [0, 1]",
}


def show(value: Any, width: int = 100) -> str:
    """`repr(value)` on one line, cut to `width` characters: how error messages quote a value."""
    text = " ".join(repr(value).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def real_number(value: Any) -> int | float | None:
    """The plain Python number of a real scalar, or None when `value` is not one.

    Real scalars: int, float, numpy scalars, `Fraction`, `Decimal`, 0-d numpy arrays and torch tensors; a
    bool is not one. Integers stay ints. A float of a type narrower than float64 (`np.float32(0.1)`, a
    float16 tensor) becomes the shortest decimal that rounds to it in its own precision (0.1, not
    0.10000000149011612): that is the number that was written.
    """
    if isinstance(value, (bool, str, bytes)) or type(value).__name__ in ("bool_", "bool"):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        itemsize = getattr(getattr(value, "dtype", None), "itemsize", 8)
        if itemsize < 8 and math.isfinite(number):
            kind = type(value)
            return _shortest(number, lambda f: float(kind(f)))
        return number
    if getattr(value, "ndim", None) == 0 and hasattr(value, "dtype") and hasattr(value, "item"):
        if type(value).__name__ == "ndarray":
            return real_number(value[()])  # its numpy scalar
        if type(value).__module__.split(".")[0] == "torch":
            number = value.item()
            if isinstance(number, float) and value.dtype.itemsize < 8 and math.isfinite(number):
                import torch

                dtype = value.dtype
                return _shortest(number, lambda f: torch.tensor(f, dtype=dtype).item())
            return real_number(number)
    return None


def _shortest(number: float, rounds: Callable[[float], float]) -> float:
    """The shortest decimal (as a float) that `rounds` maps back to `number`."""
    for digits in range(1, 18):
        candidate = float(f"{number:.{digits}g}")
        if rounds(candidate) == number:
            return candidate
    return number


def is_sequence(value: Any) -> bool:
    """A list, tuple, range or other sequence, or a 1-d numpy array or torch tensor (not a string)."""
    if isinstance(value, (str, bytes, Mapping)):
        return False
    if isinstance(value, Sequence):
        return True
    return getattr(value, "ndim", None) == 1 and hasattr(value, "dtype") and hasattr(value, "__iter__")


def split_list(text: str, name: str, example: str) -> list[str]:
    """The items of a comma-separated value ("fgsm,pgd"), stripped; an empty item ("fgsm,,pgd", a trailing
    comma) is a one-line `ConfigError` quoting the whole value, never silently dropped. An empty or blank
    `text` gives no items."""
    if not text.strip():
        return []
    parts = [part.strip() for part in text.split(",")]
    if any(not part for part in parts):
        raise ConfigError(f"{name} {text!r} has an empty item; separate the items with single commas, e.g. {example!r}")
    return parts


def parse_number(value: Any) -> float:
    """A finite number from a real scalar or a string such as "0.05" or "8/255"; ValueError otherwise."""
    if isinstance(value, str):
        try:
            number = float(Fraction(value.strip()))
        except ZeroDivisionError:
            raise ValueError(value) from None
    else:
        real = real_number(value)
        if real is None:
            raise ValueError(value)
        number = float(real)
    if not math.isfinite(number):
        raise ValueError(value)
    return number


def parse_fraction_of_one(value: Any) -> float:
    """A number in [0, 1] (an eps, a share), given as a number or a fraction string; ValueError otherwise."""
    number = parse_number(value)
    if not 0.0 <= number <= 1.0:
        raise ValueError(value)
    return number


def parse_budgets(value: Any, norm: str = "linf", *, name: str | None = None) -> list[float]:
    """Perturbation budgets, distinct and ascending: the one parser of every eps and eps_l2.

    `value` is a real scalar (one budget), a string read as the command line's `--eps` reads it (numbers
    and fractions such as "8/255", comma-separated), or a sequence of these (a list, a tuple, a 1-d array
    or tensor), one budget each. `norm` "linf": budgets in [0, 1], at least one; "l2": radii in [0, 100],
    possibly none. `name` (default "eps" / "eps_l2") names the value in errors, e.g. "--eps". Anything
    else, a value out of range, or a budget listed twice is a one-line `ConfigError`.
    """
    if norm not in _BUDGET_HIGH:
        raise ValueError(f"norm must be one of {', '.join(_BUDGET_HIGH)}, got {norm!r}")
    name = name or ("eps" if norm == "linf" else "eps_l2")
    high = _BUDGET_HIGH[norm]
    example = _BUDGET_EXAMPLE[norm]
    valid = f'give budgets in [0, {high:g}] as a number, a string such as "{example}", or a list of these'
    out: list[float] = []
    if isinstance(value, str):
        parts = split_list(value, name, example)
        for part in parts:
            try:
                out.append(parse_number(part))
            except ValueError:
                raise ConfigError(f"{name} {part!r} is not a number; {valid}") from None
    elif (number := real_number(value)) is not None:
        if not math.isfinite(number):
            raise ConfigError(f"{name} {show(value)} is not a finite number; {valid}")
        out.append(float(number))
    elif is_sequence(value):
        for item in value:
            try:
                out.append(parse_number(item))
            except ValueError:
                what = "a finite number" if real_number(item) is not None else "a number"
                raise ConfigError(f"{name} {show(value)} holds {show(item)}, which is not {what}; {valid}") from None
    else:
        raise ConfigError(f"{name} {show(value)} is not a budget; {valid}")
    out = [0.0 if number == 0 else number for number in out]  # -0.0 is the budget 0
    if not out and norm == "linf":
        raise ConfigError(f"no {name} given; {valid}")
    for number in out:
        if not 0.0 <= number <= high:
            raise ConfigError(f"{name} {number!r} is outside [0, {high:g}]; {_BUDGET_UNITS[norm]}")
    seen: set[float] = set()
    for number in out:
        if number in seen:
            raise ConfigError(f"{name} lists a value twice ({number!r} in {show(value)}); give each budget once")
        seen.add(number)
    return sorted(out)


def parse_integer(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """An int from an integer of any kind (numpy, 0-d tensor, an integral float or Fraction) or a string
    the command line would take ("12"); outside [`minimum`, `maximum`], or anything else, is a one-line
    `ConfigError`."""
    number: int | None = None
    if isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            number = None
    else:
        real = real_number(value)
        if isinstance(real, int):
            number = real
        elif isinstance(real, float) and math.isfinite(real) and real.is_integer():
            number = int(real)
    if number is None or (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        if maximum is not None:
            low = "" if minimum is None else f"{minimum} .. "
            what = f"an integer in {low}{maximum}" if maximum != MAX_SEED else f"an integer in {SEED_RANGE}"
        else:
            what = "an integer" if minimum is None else f"an integer >= {minimum}"
        raise ConfigError(f"{name} must be {what}, got {show(value)}")
    return number


# The random generators (torch.Generator.manual_seed, numpy's SeedSequence) take 64-bit seeds; seeds
# are kept to the signed 64-bit range so that every derived seed fits too.
MAX_SEED = 2**63 - 1
SEED_RANGE = f"0 .. 2**63-1 ({MAX_SEED}), the range of the random generators"


def parse_seed(value: Any, name: str = "seed") -> int:
    """A seed: an integer (of any kind, or a string such as "7") in 0 .. 2**63-1; anything else is a
    one-line `ConfigError` naming the valid range."""
    return parse_integer(value, name, minimum=0, maximum=MAX_SEED)


_TRUE = ("true", "yes", "1")
_FALSE = ("false", "no", "0")


def parse_bool(value: Any, name: str) -> bool:
    """A bool from True/False (numpy's too), the integers 1 and 0, or a string true/false, yes/no, 1/0 in
    any case; anything else (another string, None, 2, a list) is a one-line `ConfigError`: a non-empty
    string such as "no" is never taken as true."""
    if isinstance(value, bool) or type(value).__name__ in ("bool_", "bool"):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    elif (number := real_number(value)) is not None and number in (0, 1):
        return bool(number)
    raise ConfigError(f"{name} must be true or false (a bool, or one of true/false, yes/no, 1/0), got {show(value)}")


def parse_real(value: Any, name: str, *, low: float | None = None, high: float | None = None) -> float:
    """A finite float from a real scalar or a number string ("0.05", "1/20"), within [low, high] where
    given; anything else is a one-line `ConfigError`."""
    try:
        number = parse_number(value)
    except ValueError:
        number = None
    if number is None or (low is not None and number < low) or (high is not None and number > high):
        if low is not None and high is not None:
            what = f"a number in [{low:g}, {high:g}]"
        elif low is not None:
            what = f"a number >= {low:g}"
        elif high is not None:
            what = f"a number <= {high:g}"
        else:
            what = "a number"
        raise ConfigError(f"{name} must be {what}, got {show(value)}")
    return number


@dataclasses.dataclass(frozen=True)
class Bound:
    """The valid range of one numeric option: integers from `low` up (`kind` int), or numbers between `low`
    and `high` (`kind` float; `None` for no limit, `*_open` to exclude the limit itself). `why` says what
    the limit is for. One table per configuration (`EvolveConfig.BOUNDS`, `Recipe.BOUNDS`) serves both its
    `validate()` (`check`, naming the key) and the command line (`argtype`, a flag's type: argparse names
    the flag), so the two never disagree about what is valid."""

    kind: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    why: str = ""

    def phrase(self) -> str:
        """What a valid value is, after "must": "be >= 2", "be a positive number", "lie in [0, 1)"."""
        if self.kind is int:
            return f"be >= {self.low:g}"
        if self.high is None and self.low == 0:
            return "be a positive number" if self.low_open else "be a non-negative number"
        if self.high is None:
            return f"be a number {'>' if self.low_open else '>='} {self.low:g}"
        return f"lie in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"

    def valid(self) -> str:
        """`phrase()` with the reason: "be >= 2 (CMA-ES ranks the population)"."""
        return self.phrase() + (f" ({self.why})" if self.why else "")

    def contains(self, value: Any) -> bool:
        """Whether `value` is a number of the bound's kind (an int for int; no bool, NaN or infinity) in range."""
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or (self.kind is int and not isinstance(value, int))
        ):
            return False
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def check(self, name: str, value: Any) -> None:
        """A one-line `ConfigError` "NAME must VALID, got VALUE" when `value` is out of range."""
        if not self.contains(value):
            raise ConfigError(f"{name} must {self.valid()}, got {value!r}")

    def noun_phrase(self) -> str:
        """What a valid value is, with its kind: "be an integer >= 2", "be a number in [0, 1)"."""
        if self.kind is int:
            return f"be an integer >= {self.low:g}"
        phrase = self.phrase()
        return "be a number in " + phrase.removeprefix("lie in ") if phrase.startswith("lie in ") else phrase

    def argtype(self) -> Callable[[str], int | float]:
        """An argparse `type=`: the flag's text as a number in range, else an `ArgumentTypeError` that
        argparse prints after the flag's name ("argument --popsize: must be an integer >= 2 (CMA-ES ranks
        the population), got '0'")."""
        import argparse

        def parse(text: str) -> int | float:
            try:
                value = int(text) if self.kind is int else float(text)
            except ValueError:
                value = None
            if value is None or not self.contains(value):
                why = f" ({self.why})" if self.why else ""
                raise argparse.ArgumentTypeError(f"must {self.noun_phrase()}{why}, got {text!r}")
            return value

        parse.__name__ = self.kind.__name__
        return parse


def field_kinds(*classes: Any) -> dict[str, str]:
    """Field name -> annotation without spaces ("int", "float|None", "tuple[int,...]") of dataclasses."""
    return {f.name: str(f.type).replace(" ", "") for cls in classes for f in dataclasses.fields(cls)}


def coerce_numbers(
    values: Mapping[str, Any], kinds: Mapping[str, str], minimums: Mapping[str, int] | None = None
) -> dict[str, Any]:
    """`values` with the numbers of its int and float fields (per `kinds`, see `field_kinds`) made plain:
    numpy scalars, Fractions, 0-d tensors, integral floats for ints and strings as the command line reads
    them become int / float (a list of them for `tuple[int, ...]` / `tuple[float, ...]` fields), and bool
    fields are read by `parse_bool` ("no" is false, "maybe" an error, never a truthy string). Plain ints
    and floats, None, bools and values of other types are left for the configuration's own validation;
    an unreadable number is a one-line `ConfigError` (with `minimums[name]` in the words for ints)."""
    minimums = minimums or {}
    out = dict(values)
    for key, value in values.items():
        base = kinds.get(key, "").removesuffix("|None")
        if base == "bool" and value is not None:
            out[key] = parse_bool(value, key)
            continue
        if value is None or isinstance(value, bool):
            continue
        if base == "int" and not isinstance(value, int):
            if isinstance(value, str) or real_number(value) is not None:
                out[key] = (
                    parse_seed(value, key)
                    if key.endswith("seed")
                    else parse_integer(value, key, minimum=minimums.get(key))
                )
        elif base == "float" and not isinstance(value, (int, float)):
            if isinstance(value, str) or real_number(value) is not None:
                out[key] = parse_real(value, key)
        elif base in ("tuple[int,...]", "tuple[float,...]") and is_sequence(value):
            items = list(value)
            if all(isinstance(v, str) or real_number(v) is not None for v in items):
                one = parse_integer if base.startswith("tuple[int") else parse_real
                out[key] = tuple(one(v, key) for v in items)
    return out


def spec_slug(spec: str, *, width: int = 40) -> str:
    """A folder name for a spec (a loss, a path): its safe characters, with a short hash of the spec when
    anything was dropped or cut, so that different specs never share a folder."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", spec).strip("_")[:width] or "x"
    return base if base == spec else f"{base}-{hashlib.sha1(spec.encode()).hexdigest()[:8]}"


def read_toml(path: Any) -> dict[str, Any]:
    """A TOML file (a path, or a package resource from `importlib.resources.files`) as a dict; a missing
    file or a syntax error is a one-line `ConfigError`."""
    p = Path(path) if isinstance(path, (str, os.PathLike)) else path
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
