"""The one error type the backend core raises: it names the target, IR node and op at fault."""
from __future__ import annotations

import contextlib
import contextvars

# the target being lowered or run: set by the core (Program) around its builds and calls, so every
# LoweringError names the real target without each raise site passing it
CURRENT_TARGET: contextvars.ContextVar[str] = contextvars.ContextVar("attncc_lowering_target", default="cpu")


@contextlib.contextmanager
def lowering_for(target: str):
    """LoweringErrors raised inside name `target` (unless the raise site names another)."""
    token = CURRENT_TARGET.set(target)
    try:
        yield
    finally:
        CURRENT_TARGET.reset(token)


class LoweringError(RuntimeError):
    """Lowering, building or running a node for a target failed.

    The message starts with the target, node name and op so the user can find it in `print_ir`;
    the TVM error that caused it is chained (`__cause__`) and summarized in one line.
    """

    def __init__(self, node: str, op: str, what: str, cause: BaseException | None = None,
                 target: str | None = None):
        target = target or CURRENT_TARGET.get()
        detail = ""
        if cause is not None:
            first = str(cause).strip().splitlines()
            lines = [l for l in first if l.strip()]
            summary = next((l for l in reversed(lines) if "Error" in l or "error" in l), lines[-1] if lines else "")
            detail = f": {type(cause).__name__}: {summary.strip()[:300]}"
        super().__init__(f"{target} backend: node '{node}' ({op}): {what}{detail}")
        self.node = node
        self.op = op
        self.target = target


# the name the cpu backend's users and tests know
CpuLoweringError = LoweringError
