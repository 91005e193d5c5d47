"""Sharded models run on torch.distributed (gloo, local processes): outputs equal the unsharded eager model on
every rank (fp32, 1e-5); a rank that fails makes the call fail naming it, never a hang; a world size that does
not match the plan is refused before any kernel builds."""
from __future__ import annotations

import time

import pytest

from attncc.distributed import DistributedError, launch
from tests.distributed import jobs

TOL = 1e-5


def test_tp2_gqa_block_and_pp2_decoder_equal_eager_on_two_ranks(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path))
    errors = launch(jobs.llama_tp_and_decoder_pp, 2)
    assert errors["tp2_block"] < TOL and errors["pp2_decoder"] < TOL, errors
    # identical shards share one build: rank 0 builds, rank 1 finds the same kernels in the cache
    first, second = errors["tp2_builds"]
    assert first > 0 and second == 0, errors["tp2_builds"]


def test_ep2_moe_block_and_tp2_absorbed_mla_decode_equal_eager_on_two_ranks(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path))
    got = launch(jobs.moe_ep_and_mla_decode_tp, 2)
    assert got["ep2_moe"] < TOL and got["tp2_mla_decode"] < TOL, got
    # each rank runs 2 of DeepSeek-V3's 4 heads, in the absorbed (decode) order mla-absorb picks
    assert got["mla_heads"] == [2] and got["mla_absorbed"] == [True], got


@pytest.mark.slow  # ~1 min each: transformers models built, imported and compiled on every rank
@pytest.mark.parametrize("job", ["mixtral_ep", "deepseek_mla_tp"])
def test_ep2_mixtral_and_tp2_deepseek_mla_equal_eager(job, tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path))
    assert launch(getattr(jobs, job), 2) < TOL


@pytest.mark.slow  # four ranks on two cores
def test_tp4_block_equals_eager_on_four_ranks(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path))
    assert launch(jobs.llama_tp4, 4) < TOL


def test_launch_returns_rank_zeros_result_after_a_collective():
    assert launch(jobs.square_rank, 2) == 3


def test_a_world_size_that_does_not_match_the_plan_is_refused_before_building():
    with pytest.raises(DistributedError, match=r"needs 4 ranks \(tp\*ep\*pp\) but the process group has 2"):
        launch(jobs.wrong_world_size, 2)


def test_a_rank_that_raises_fails_the_job_naming_it_within_the_timeout():
    start = time.monotonic()
    with pytest.raises(DistributedError, match=r"rank 1 failed: ValueError: rank 1 broke on purpose"):
        launch(jobs.rank_one_raises, 2, timeout_s=20)
    assert time.monotonic() - start < 60


def test_a_rank_that_dies_fails_the_job_naming_it():
    start = time.monotonic()
    with pytest.raises(DistributedError, match=r"rank (1 died|0 failed)"):
        launch(jobs.rank_one_dies, 2, timeout_s=20)
    assert time.monotonic() - start < 90


@pytest.mark.slow  # cuda codegen + nvcc for two ranks' segments
def test_cuda_tp2_builds_and_exports_with_nccl_as_the_group_backend(tmp_path, monkeypatch):
    import shutil

    if shutil.which("nvcc") is None:
        pytest.skip("nvcc is not installed: the cuda target cannot build its fatbin here")
    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path / "cache"))
    manifest = launch(jobs.cuda_tp2_export, 2, str(tmp_path / "folder"))
    assert manifest["backend"] == "nccl" and manifest["target"] == "cuda" and manifest["world_size"] == 2
    assert any(name.endswith(".so") for name in manifest["files"]), sorted(manifest["files"])
