"""Import timm on a CPU-only torch without torchvision.

timm imports torchvision at module import (FrozenBatchNorm2d for its freeze helpers, datasets/transforms for its
data pipeline); building a model from a config never calls any of it. The only torchvision wheels reachable here
are CUDA builds whose compiled ops cannot load against the CPU torch, and such an installed torchvision breaks
`import transformers` for the whole suite. So CI installs timm with --no-deps, and when torchvision cannot be
imported this registers stand-in `torchvision.*` modules whose every attribute is a placeholder class that raises
(naming what was used) if anything calls or instantiates it.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types

import pytest


class _PlaceholderMeta(type):
    """Attributes of a placeholder (enum members, nested names) are placeholders too."""

    def __getattr__(cls, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        value = _placeholder(f"{cls.__qualname__}.{name}")
        setattr(cls, name, value)
        return value

    def __call__(cls, *args, **kwargs):
        raise RuntimeError(f"{cls.__qualname__}: torchvision is not importable here (timm was imported without it)")


def _placeholder(qualname: str) -> type:
    cls = _PlaceholderMeta(qualname.rsplit(".", 1)[-1], (), {})
    cls.__qualname__ = qualname
    return cls


class _StandInModule(types.ModuleType):
    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        value = _placeholder(f"{self.__name__}.{name}")
        setattr(self, name, value)
        return value


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if fullname == "torchvision" or fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        return _StandInModule(spec.name)

    def exec_module(self, module):
        module.__path__ = []


def import_timm():
    """timm, or skip the calling test when it is not installed."""
    try:
        importlib.import_module("torchvision")
    except Exception:  # noqa: BLE001 - absent, or a build whose compiled ops do not load against this torch
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        if not any(isinstance(f, _StandInFinder) for f in sys.meta_path):
            sys.meta_path.insert(0, _StandInFinder())
    return pytest.importorskip("timm")
