"""Attention variant features (one file per family). Importing registers every feature kind."""
from .conformer import Grouped, Strided
from .gated_positional import GatedPositional
from .convshare import ConvShare
from .head_mixing import CHAI, KnockingHeads, MoH
from .hilo import HiLo
from .latent import MLA, MTLA
from .linear import LinearAttn
from .local import BlockedLocal, HeadBlocks, MultiWindow
from .lowrank import GlobalQuery
from .position_bias import Alibi, BucketedBias, WindowBias
from .sparse import BlockSparse, TopkSparse, Uniform
from .talking_heads import TalkingHeads

__all__ = ["MLA", "MTLA", "GlobalQuery", "Grouped", "Strided", "MultiWindow", "HeadBlocks", "BlockedLocal", "HiLo", "MoH",
           "KnockingHeads", "CHAI", "TopkSparse", "BlockSparse", "Uniform", "LinearAttn", "ConvShare",
           "Alibi", "BucketedBias", "WindowBias", "TalkingHeads",
           "GatedPositional"]
