"""Display names of loss specs, for progress bars and log lines.

A spec is exact and can be long: an evolved loss is `taylorglo:[t0,...,t7]` with eight 17-digit floats.
Where people read it (a bar's description, a log line) it is shown by its display name instead:

- a name registered with `set_display_name` (a benchmark registers "taylorglo (evolved)" for the loss an
  evolution found, `robust_glo.benchmark.pipeline.evolved_label`);
- else, for inline TaylorGLO parameters, the parameters rounded to two decimals as the report shows them,
  `taylorglo[1.52, -0.31, ...]`, when that is shorter than the spec (the brackets without the colon say it
  is a name, not a spec to copy);
- else the spec itself.

Files, folders and results always keep the exact spec.
"""

from __future__ import annotations

import json
import re

_NAMES: dict[str, str] = {}
_INLINE_TAYLORGLO = re.compile(r"taylorglo:\[[^\]]*\]")


def set_display_name(spec: str, name: str) -> None:
    """Show `spec` as `name` in progress bars and log lines of this process (an empty name forgets it)."""
    if name and name != spec:
        _NAMES[spec] = name
    else:
        _NAMES.pop(spec, None)


def display_name(spec: str) -> str:
    """The name `spec` is shown by in progress bars and log lines (see the module's docstring)."""
    if spec in _NAMES:
        return _NAMES[spec]
    if _INLINE_TAYLORGLO.fullmatch(spec):
        try:
            theta = [float(t) for t in json.loads(spec.split(":", 1)[1])]
        except (ValueError, TypeError):
            return spec
        short = "taylorglo[" + ", ".join(f"{t:.2f}" for t in theta) + "]"
        return short if len(short) < len(spec) else spec
    return spec


def shorten_specs(text: str) -> str:
    """`text` (a log line) with every loss spec in it that has a display name shown by that name."""
    for spec, name in sorted(_NAMES.items(), key=lambda item: -len(item[0])):  # longest first
        text = text.replace(spec, name)
    return _INLINE_TAYLORGLO.sub(lambda m: display_name(m.group(0)), text)
