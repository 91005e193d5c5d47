"""The register tile of a packed-panel matmul kernel (cpu), chosen from the target's Capabilities.

One rule read by the tile pass (which records and prices the tile) and by the cpu kernel (which builds it when
no tile was recorded), so the recorded, priced and built tiles are the same numbers.

The kernel (backends/cpu/matmul.py) keeps a rows x cols fp32 output tile in vector registers while it walks
the whole K extent: per k it loads cols/lanes vectors of the packed weight panel, broadcasts one A value per
row and issues rows x cols/lanes FMAs. So it needs rows*v accumulators + v panel vectors + 1 broadcast
register (v = cols/lanes), which the register file must hold: 32 zmm with AVX-512 -> up to 14 rows of 32
columns; 16 ymm with AVX2 -> 2 rows of 32 columns. `TileRules.matmul_rows_max` caps the rows where a
measurement showed a smaller tile no slower (cpu: 8, backends/cpu/capabilities.py). Rows must divide M
exactly (a predicated tile cannot live in registers), or the tile takes the largest row count over an
accumulator padded to whole tiles (the kernel re-reads row M-1 for the padding; the tail's extra rows are
never written): a symbolic M always, a static M when its largest divisor is under half the largest row count
and padding adds at most half of M (prime prefill lengths such as 257, decode rows 11-15), since 1-row tiles
keep too few accumulators in flight and re-read the weight panel per row.
Columns: the panel width (TileRules.matmul_cols) or the largest exact divisor of N below it.
"""
from __future__ import annotations

from .capabilities import Capabilities


def _largest_divisor(n: int, choices) -> int:
    for c in choices:
        if n % c == 0:
            return c
    return 1


def max_tile_rows(caps: Capabilities) -> int:
    """Rows whose accumulators, panel vectors and the broadcast register fit the register file (>= 1)."""
    rules = caps.tiles
    lanes = max(1, caps.vector_width_bits // 32)
    vecs = max(1, -(-rules.matmul_cols // lanes))       # vectors per tile row = panel loads per k
    fit = max(1, (caps.vector_registers - vecs - 1) // vecs)
    return min(fit, rules.matmul_rows_max) if rules.matmul_rows_max else fit


def register_tile(m: int | None, n: int, caps: Capabilities, max_cols: int | None = None) -> tuple[int, int]:
    """(rows, cols) of the register tile for an (m x k) @ (k x n) product; m None = symbolic rows.

    `max_cols` bounds the columns (a gated matmul's output tile is half its accumulator panel)."""
    if not caps.tiles.matmul_cols or not caps.vector_registers:
        raise ValueError("this target's Capabilities declare no matmul register tile (tiles.matmul_cols, "
                         "vector_registers)")
    top = max_tile_rows(caps)
    rows = top if m is None else _largest_divisor(m, range(min(top, m), 0, -1))
    if m is not None and rows < top // 2 and -(-m // top) * top * 2 <= 3 * m:
        rows = top   # padded: ceil(m / top) tiles
    cap = min(caps.tiles.matmul_cols, max_cols or caps.tiles.matmul_cols)
    # a column tile of 1 leaves no vector loop: any exact divisor <= the panel vectorizes (LLVM pads the tail)
    cols = _largest_divisor(n, tuple(c for c in (cap, 16, 8) + tuple(range(cap - 1, 0, -1)) if c <= cap))
    return rows, cols
