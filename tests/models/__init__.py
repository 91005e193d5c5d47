"""A zoo of small transformer blocks written in the styles of real model code.

Each module has `make_<name>(variant="sdpa"|"eager") -> (module, example_inputs)`: "sdpa" calls
torch's scaled_dot_product_attention, "eager" spells attention out in primitive ops the way the
original code base does. Shared by frontend, pass and backend tests; weights are random (seeded).
"""
from .bert import make_bert_layer
from .encoder_decoder import make_encoder_decoder
from .gemma2 import make_gemma2_block
from .gpt2 import make_gpt2_block
from .llama import make_llama_block
from .mistral import make_mistral_block
from .vit import make_vit_block

ZOO = {
    "gpt2_block": make_gpt2_block,
    "llama_block": make_llama_block,
    "bert_layer": make_bert_layer,
    "vit_block": make_vit_block,
    "encoder_decoder": make_encoder_decoder,
    "mistral_block": make_mistral_block,
    "gemma2_block": make_gemma2_block,
}

__all__ = ["ZOO", *[f"make_{n}" for n in ZOO]]
