"""IR passes (one per file) and the pipeline machinery. Importing registers every pass."""
from . import canonicalize, constant_fold, dce  # noqa: F401  (registration)
from . import canonicalize_attention, cse, decode_split_kv, fold_repeat_kv, fuse_attention, fuse_qkv  # noqa: F401,E402
from . import lift_attention, lift_mla, lift_position_bias  # noqa: F401,E402
from . import decompose_variants  # noqa: F401,E402
from . import fold_batch_norm, fold_kv_cache, lift_rotary  # noqa: F401,E402
from . import lift_rms_norm  # noqa: F401,E402
from . import shard  # noqa: F401,E402
from .base import PASS_REGISTRY, Pass, PipelineError, parse_pipeline, register_pass, run_pipeline, split_pipeline

__all__ = ["PASS_REGISTRY", "Pass", "PipelineError", "parse_pipeline", "register_pass", "run_pipeline", "split_pipeline"]
