"""The threat models an attack works in: an L-infinity ball (`linf`, the default) or an L2 ball (`l2`)."""

from __future__ import annotations

from enum import Enum

from robust_glo.errors import ConfigError


class ThreatModel(str, Enum):
    """An attack's threat model; its value is the spec's `norm=` text ("linf" or "l2")."""

    LINF = "linf"
    L2 = "l2"

    def __str__(self) -> str:
        return self.value

    @property
    def display(self) -> str:
        """ "Linf" or "L2": the `norm` column of results."""
        return _DISPLAY[self.value]

    @property
    def worst_label(self) -> str:
        """The results row of the per-input worst case over this threat model's attacks."""
        return _WORST[self.value]

    @property
    def budget_word(self) -> str:
        """What eps means in this threat model, for reports."""
        return _BUDGET_WORD[self.value]

    @classmethod
    def parse(cls, value: object) -> ThreatModel:
        """A `ThreatModel` from "linf", "Linf", "l2", "L2" (any case) or a `ThreatModel`."""
        if isinstance(value, ThreatModel):
            return value
        if isinstance(value, str) and value.strip().lower() in _DISPLAY:
            return cls(value.strip().lower())
        raise ConfigError(f"threat model {value!r} is not valid; valid: {', '.join(_DISPLAY)}")


_DISPLAY = {"linf": "Linf", "l2": "L2"}
_WORST = {"linf": "worst", "l2": "worst:l2"}
_BUDGET_WORD = {"linf": "ε", "l2": "L2 radius"}
