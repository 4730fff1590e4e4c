"""User models by spec: `package.module:name` or `path/to/file.py:name`."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path

from torch import nn

from robust_glo.errors import ConfigError


def load_user_model(spec: str) -> nn.Module:
    """`package.module:name` or `path/to/file.py:name`, where name is an `nn.Module` or a callable taking
    no arguments that returns one (already trained; it takes inputs in [0, 1] and returns logits)."""
    location, sep, attribute = spec.rpartition(":")
    if not sep or not location or not attribute.isidentifier():
        raise ConfigError(f"user model {spec!r} must be package.module:name or path/to/file.py:name")
    try:
        if location.endswith(".py"):
            path = Path(location)
            if not path.is_file():
                raise ConfigError(f"user model {spec!r}: file {location!r} does not exist")
            name = "robust_glo_user_model_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
            module_spec = importlib.util.spec_from_file_location(name, path)
            assert module_spec is not None and module_spec.loader is not None
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
            sys.modules[name] = module
        else:
            module = importlib.import_module(location)
    except ConfigError:
        raise
    except Exception as exc:  # any failure inside user code is reported with its spec
        raise ConfigError(f"user model {spec!r}: importing {location!r} failed: {type(exc).__name__}: {exc}") from None
    obj = getattr(module, attribute, None)
    if obj is None:
        raise ConfigError(f"user model {spec!r}: {location!r} has no attribute {attribute!r}")
    if not isinstance(obj, nn.Module):
        if not callable(obj):
            raise ConfigError(f"user model {spec!r} is neither an nn.Module nor a callable returning one")
        try:
            obj = obj()
        except Exception as exc:
            raise ConfigError(f"user model {spec!r} raised {type(exc).__name__}: {exc}") from None
    if not isinstance(obj, nn.Module):
        raise ConfigError(f"user model {spec!r} returned {type(obj).__name__}, expected an nn.Module")
    return obj
