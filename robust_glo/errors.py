"""Exceptions that the CLI turns into one-line messages with exit code 2."""

from __future__ import annotations


class RobustGloError(Exception):
    """Base class: a user-facing error whose message is one self-explanatory line."""


class LossSpecError(RobustGloError, ValueError):
    """A loss spec cannot be resolved, or the loss it names misbehaves."""


class DatasetError(RobustGloError, ValueError):
    """A dataset name is unknown or its files cannot be found."""


class ModelError(RobustGloError, ValueError):
    """A model name is unknown or does not fit the data."""


class ConfigError(RobustGloError, ValueError):
    """A configuration value or key is invalid."""


class MissingDependencyError(RobustGloError, ImportError):
    """A package that robust-glo needs for what was asked is not installed (torchattacks, which is not a
    dependency of the wheel: see robust_glo.robustness.attacks.base.TORCHATTACKS_INSTALL). The message is
    one line with the command that installs it."""


class UsageError(RobustGloError):
    """A command line that cannot be parsed: a missing or malformed flag (printed with the same
    `robust-glo: error: ` prefix as every other error, naming the subcommand)."""


class ResumeError(ConfigError):
    """A run directory cannot be resumed: it was made with other settings, or its state is unreadable."""


class StateFileError(ResumeError):
    """A file a run wrote cannot be read: cut short (a crash, a full disk), not JSON, or not the expected
    shape. The message names the file and what to do; files that can be rebuilt or recomputed never raise it."""


class DivergedError(RobustGloError):
    """A loss became non-finite. Raised where that cannot be recorded as a diverged run instead (e.g. on
    fresh weights, where the loss itself is broken); training records later divergence as a status."""


class NonFiniteLossError(DivergedError, LossSpecError):
    """A user loss returned NaN or infinity, or a finite value whose gradient is not (training treats this
    as divergence after step 0; the message says which)."""
