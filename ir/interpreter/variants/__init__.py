"""Reference semantics of the attention variant features (registered by kind with `register_reference`)."""
from . import conformer, convshare, gated_positional, head_mixing, hilo, latent, linear, lowrank, position_bias, score_mods, talking_heads  # noqa: F401
