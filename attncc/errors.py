"""Errors raised at attncc's public surface (API, CLI, file loading), each naming what the user gave.

Lower layers keep their own classes (IRError, PipelineError, HardwareError, ONNXImportError, ...),
all ValueError subclasses; these cover what only the public surface can see: files, inputs, fallbacks.
"""
from __future__ import annotations


class AttnccError(Exception):
    """Base of the errors below; the CLI prints any of them as one line."""


class ModelFileError(AttnccError, ValueError):
    """A model file that cannot be read: missing, corrupt, truncated or not ONNX; names the file."""


class ArtifactError(AttnccError, OSError):
    """An export folder that cannot be written, or a saved folder (manifest/plan) that cannot be read back."""


class InputError(AttnccError, TypeError):
    """An input to a compiled model with the wrong dtype or shape; names the input and what was expected."""


class FallbackError(AttnccError, RuntimeError):
    """`strict=True` and lowering fell back to generic or reference code for a node."""


class UsageError(AttnccError, ValueError):
    """A command-line argument attncc refuses (e.g. --dump-ir into attncc's own source folder)."""


class FallbackWarning(UserWarning):
    """Lowering ran a node as generic or reference code instead of its generated kernel."""
