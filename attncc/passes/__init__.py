"""Target-aware passes: they consult the cost model (attncc.cost_models), so they live outside ir/.
Importing this package registers them in the same PASS_REGISTRY as the IR passes."""
from . import mla_absorb, tile  # noqa: F401  (registration)
from .tile import choose_attention_tiling, choose_matmul_tiling, matmul_tiling

__all__ = ["choose_attention_tiling", "choose_matmul_tiling", "matmul_tiling"]
