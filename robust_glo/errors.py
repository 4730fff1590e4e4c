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
