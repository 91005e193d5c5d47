"""The matmul register tile rule (cost_models/register_tile.py): read from Capabilities, never over the register file."""
from __future__ import annotations

import dataclasses

import pytest

from attncc.cost_models.capabilities import Capabilities, TileRules
from attncc.cost_models.register_tile import max_tile_rows, register_tile

RULES = TileRules(matmul_cols=32)
AVX512 = Capabilities(vector_width_bits=512, vector_registers=32, tiles=RULES)
AVX2 = Capabilities(vector_width_bits=256, vector_registers=16, tiles=RULES)


@pytest.mark.parametrize("caps", [AVX512, AVX2], ids=["avx512", "avx2"])
@pytest.mark.parametrize("m,n", [(256, 512), (512, 1376), (1, 512), (12, 128), (100, 100), (7, 30), (None, 2816)])
def test_tile_fits_the_register_file_and_divides_the_product(caps, m, n):
    rows, cols = register_tile(m, n, caps)
    vecs = -(-cols // (caps.vector_width_bits // 32))
    assert rows * vecs + vecs + 1 <= caps.vector_registers     # accumulators + panel vectors + the broadcast
    assert n % cols == 0 and cols <= caps.tiles.matmul_cols
    assert rows == max_tile_rows(caps) if m is None else (m % rows == 0 or rows == max_tile_rows(caps))


def test_register_count_sets_the_rows():
    # 32 zmm hold 14 rows of 2 accumulator vectors (+2 panel vectors, +1 broadcast); 16 ymm hold 2 rows of 4
    assert max_tile_rows(AVX512) == 14 and max_tile_rows(AVX2) == 2
    capped = dataclasses.replace(AVX512, tiles=dataclasses.replace(RULES, matmul_rows_max=8))
    assert register_tile(256, 512, capped) == (8, 32) and register_tile(256, 512, AVX2) == (2, 32)
    assert register_tile(256, 512, capped, max_cols=16) == (8, 16)
    assert register_tile(6, 512, capped) == (6, 32)          # decode rows: one tile of all of them
    # a prime length takes 8-row tiles over a padded accumulator, not 1-row tiles; 9 rows: 3 exact tiles of 3
    assert register_tile(257, 512, capped)[0] == 8 and register_tile(13, 512, capped)[0] == 8
    assert register_tile(9, 512, capped)[0] == 3 and register_tile(12, 512, capped)[0] == 6


def test_target_without_a_register_tile_says_so():
    with pytest.raises(ValueError, match="matmul_cols"):
        register_tile(8, 8, Capabilities(vector_width_bits=128))
