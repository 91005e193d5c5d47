"""The one error type of distributed execution: it names the rank and, where one was running, the collective."""
from __future__ import annotations

from ..errors import AttnccError


class DistributedError(AttnccError):
    """A rank failed, timed out in a collective, or the process group does not match the compiled plan."""
