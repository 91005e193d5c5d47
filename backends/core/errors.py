"""The one error type the CPU backend raises: it names the IR node and op at fault."""
from __future__ import annotations


class CpuLoweringError(RuntimeError):
    """Lowering, building or running a node for the `cpu` target failed.

    The message starts with the node name and op so the user can find it in `print_ir`;
    the TVM error that caused it is chained (`__cause__`) and summarized in one line.
    """

    def __init__(self, node: str, op: str, what: str, cause: BaseException | None = None):
        detail = ""
        if cause is not None:
            first = str(cause).strip().splitlines()
            lines = [l for l in first if l.strip()]
            summary = next((l for l in reversed(lines) if "Error" in l or "error" in l), lines[-1] if lines else "")
            detail = f": {type(cause).__name__}: {summary.strip()[:300]}"
        super().__init__(f"cpu backend: node '{node}' ({op}): {what}{detail}")
        self.node = node
        self.op = op
