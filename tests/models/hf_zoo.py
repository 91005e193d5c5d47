"""Real Hugging Face `transformers` model code with tiny random configs (no downloads), one factory per
family. Each returns (module, example_inputs, attention_sites): the module's forward takes plain tensors
and returns one tensor (logits or the last hidden state), so torch.export and torch.onnx.export see no
cache objects; `attention_sites` is how many attention layers the model has.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

VOCAB = 64
BATCH, SEQ = 2, 8


class LogitsOnly(nn.Module):
    """forward(input_ids) -> logits of a causal LM (use_cache off: no cache objects in the graph)."""

    def __init__(self, lm: nn.Module):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids):
        return self.lm(input_ids=input_ids, use_cache=False).logits


class EncoderOnly(nn.Module):
    """forward(input_ids, attention_mask) -> last hidden state of an encoder (a padded row exercises the mask)."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids, attention_mask):
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


class Seq2SeqLogits(nn.Module):
    """forward(input_ids, decoder_input_ids) -> decoder logits of an encoder-decoder LM."""

    def __init__(self, lm: nn.Module):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids, decoder_input_ids):
        return self.lm(input_ids=input_ids, decoder_input_ids=decoder_input_ids, use_cache=False).logits


def _ids(seed: int = 0, batch: int = BATCH, seq: int = SEQ) -> torch.Tensor:
    return torch.randint(3, VOCAB, (batch, seq), generator=torch.Generator().manual_seed(seed))


def _build(cls, config, variant: str) -> nn.Module:
    config._attn_implementation = variant
    torch.manual_seed(0)
    return cls(config).eval()


def _decoder(config_cls_name: str, model_cls_name: str, layers: int = 2, **kw) -> Callable:
    def make(variant: str = "sdpa"):
        import transformers

        config = getattr(transformers, config_cls_name)(vocab_size=VOCAB, num_hidden_layers=layers, **kw)
        lm = _build(getattr(transformers, model_cls_name), config, variant)
        return LogitsOnly(lm).eval(), (_ids(),), layers
    return make


_LLAMA_LIKE = dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2,
                   max_position_embeddings=64)
_MOE = dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=64)

make_llama = _decoder("LlamaConfig", "LlamaForCausalLM", **_LLAMA_LIKE)
make_mistral = _decoder("MistralConfig", "MistralForCausalLM", sliding_window=4, **_LLAMA_LIKE)
make_qwen2 = _decoder("Qwen2Config", "Qwen2ForCausalLM", **_LLAMA_LIKE)
make_phi3 = _decoder("Phi3Config", "Phi3ForCausalLM", partial_rotary_factor=0.5, pad_token_id=0, **_LLAMA_LIKE)
make_gemma = _decoder("GemmaConfig", "GemmaForCausalLM", head_dim=8, **_LLAMA_LIKE)
make_gemma2 = _decoder("Gemma2Config", "Gemma2ForCausalLM", head_dim=8, sliding_window=4,
                       attn_logit_softcapping=50.0, final_logit_softcapping=30.0, query_pre_attn_scalar=16,
                       **_LLAMA_LIKE)
make_gpt2 = _decoder("GPT2Config", "GPT2LMHeadModel", layers=2, n_embd=32, n_head=4, n_positions=64)
make_gpt_neox = _decoder("GPTNeoXConfig", "GPTNeoXForCausalLM", hidden_size=32, intermediate_size=64,
                         num_attention_heads=4, max_position_embeddings=64, rotary_pct=0.5)
make_falcon = _decoder("FalconConfig", "FalconForCausalLM", hidden_size=32, num_attention_heads=4,
                       new_decoder_architecture=True, num_kv_heads=2, alibi=False, parallel_attn=True)
make_bloom = _decoder("BloomConfig", "BloomForCausalLM", hidden_size=32, n_head=4)
make_opt = _decoder("OPTConfig", "OPTForCausalLM", hidden_size=32, ffn_dim=64, num_attention_heads=4,
                    word_embed_proj_dim=32, max_position_embeddings=64, pad_token_id=1)
make_mixtral = _decoder("MixtralConfig", "MixtralForCausalLM", num_local_experts=4, num_experts_per_tok=2, **_MOE)
make_qwen2_moe = _decoder("Qwen2MoeConfig", "Qwen2MoeForCausalLM", num_experts=4, num_experts_per_tok=2,
                          moe_intermediate_size=32, shared_expert_intermediate_size=48, decoder_sparse_step=1,
                          **_MOE)
make_deepseek_v3 = _decoder("DeepseekV3Config", "DeepseekV3ForCausalLM", hidden_size=32, intermediate_size=64,
                            moe_intermediate_size=16, num_attention_heads=4, num_key_value_heads=4,
                            n_routed_experts=8, n_shared_experts=1, num_experts_per_tok=2, n_group=2,
                            topk_group=1, first_k_dense_replace=1, q_lora_rank=24, kv_lora_rank=16,
                            qk_rope_head_dim=4, qk_nope_head_dim=8, v_head_dim=8, max_position_embeddings=64,
                            rope_interleave=True)


def _encoder(config_cls_name: str, model_cls_name: str, layers: int = 2, **kw) -> Callable:
    def make(variant: str = "sdpa"):
        import transformers

        config = getattr(transformers, config_cls_name)(vocab_size=VOCAB, **kw)
        enc = _build(getattr(transformers, model_cls_name), config, variant)
        mask = torch.ones(BATCH, SEQ, dtype=torch.long)
        mask[1, -3:] = 0  # one padded row
        return EncoderOnly(enc).eval(), (_ids(), mask), layers
    return make


_BERT_LIKE = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                  max_position_embeddings=64)
make_bert = _encoder("BertConfig", "BertModel", **_BERT_LIKE)
make_roberta = _encoder("RobertaConfig", "RobertaModel", pad_token_id=1, **_BERT_LIKE)
make_distilbert = _encoder("DistilBertConfig", "DistilBertModel", dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                           max_position_embeddings=64)


def _seq2seq(config_cls_name: str, model_cls_name: str, sites: int, **kw) -> Callable:
    def make(variant: str = "sdpa"):
        import transformers

        config = getattr(transformers, config_cls_name)(vocab_size=VOCAB, **kw)
        lm = _build(getattr(transformers, model_cls_name), config, variant)
        return Seq2SeqLogits(lm).eval(), (_ids(0), _ids(1, seq=6)), sites
    return make


# T5: 2 encoder layers (self) + 2 decoder layers (self + cross) = 6 attention sites
make_t5 = _seq2seq("T5Config", "T5ForConditionalGeneration", 6, d_model=32, d_kv=8, d_ff=64, num_layers=2,
                   num_decoder_layers=2, num_heads=4, relative_attention_num_buckets=8,
                   relative_attention_max_distance=16, decoder_start_token_id=0, pad_token_id=0)
make_bart = _seq2seq("BartConfig", "BartForConditionalGeneration", 6, d_model=32, encoder_layers=2,
                     decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
                     decoder_ffn_dim=64, max_position_embeddings=64, pad_token_id=1)

class HiddenStates(nn.Module):
    """forward(x) -> last hidden state of a vision or speech encoder (pixels, mel features or raw audio)."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, x):
        return self.encoder(x).last_hidden_state


def _randomize_position_bias_tables(model: nn.Module) -> None:
    """Swin initializes its relative position bias tables to zeros: an all-zero bias would vanish as an
    all-visible mask, so give them seeded random values (as a trained model has) to keep the bias observable."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("relative_position_bias_table"):
                p.copy_(torch.randn(p.shape, generator=gen))


def _signal_encoder(config_cls_name: str, model_path: str, shape: tuple, sites: int, **kw) -> Callable:
    """A vision/speech encoder fed a random float tensor of `shape`; model_path is 'Class' or 'module:Class'."""
    def make(variant: str = "sdpa"):
        import importlib

        import transformers

        module, _, cls = model_path.rpartition(":")
        owner = importlib.import_module(module) if module else transformers
        config = getattr(transformers, config_cls_name)(**kw)
        enc = _build(getattr(owner, cls), config, variant)
        _randomize_position_bias_tables(enc)
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
        return HiddenStates(enc).eval(), (x,), sites
    return make


_VIT_LIKE = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, image_size=32,
                 patch_size=8, num_channels=3)
make_vit = _signal_encoder("ViTConfig", "ViTModel", (BATCH, 3, 32, 32), 2, **_VIT_LIKE)
make_clip_vision = _signal_encoder("CLIPVisionConfig", "CLIPVisionModel", (BATCH, 3, 32, 32), 2, **_VIT_LIKE)
# Swin: 32x32 image, 4x4 patches -> 8x8 tokens in 4x4 windows (stage 1: plain + shifted), merged to 4x4 (stage 2:
# one window, shift off) = 4 attention sites
make_swin = _signal_encoder("SwinConfig", "SwinModel", (BATCH, 3, 32, 32), 4, image_size=32, patch_size=4,
                            num_channels=3, embed_dim=16, depths=[2, 2], num_heads=[2, 4], window_size=4)
# Whisper's encoder: 2 convs (the 2nd stride 2) over 8 mel bins x 16 frames -> 8 positions
make_whisper = _signal_encoder("WhisperConfig", "transformers.models.whisper.modeling_whisper:WhisperEncoder",
                               (BATCH, 8, 16), 2, num_mel_bins=8, d_model=32, encoder_layers=2,
                               encoder_attention_heads=4, encoder_ffn_dim=64, decoder_layers=1,
                               decoder_attention_heads=4, decoder_ffn_dim=64, max_source_positions=8,
                               max_target_positions=16, vocab_size=VOCAB, pad_token_id=0, bos_token_id=1,
                               eos_token_id=2, decoder_start_token_id=1)
# wav2vec2: conv feature extractor (kernel 10 stride 5, kernel 3 stride 2) over 400 samples -> 39 frames
make_wav2vec2 = _signal_encoder("Wav2Vec2Config", "Wav2Vec2Model", (BATCH, 400), 2, hidden_size=32,
                                num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, conv_dim=(16, 16),
                                conv_stride=(5, 2), conv_kernel=(10, 3), num_conv_pos_embeddings=16,
                                num_conv_pos_embedding_groups=4, vocab_size=VOCAB)

HF_ZOO: dict[str, Callable] = {
    "llama": make_llama, "mistral": make_mistral, "qwen2": make_qwen2, "phi3": make_phi3, "gemma": make_gemma,
    "gemma2": make_gemma2, "gpt2": make_gpt2, "gpt_neox": make_gpt_neox, "falcon": make_falcon,
    "bloom": make_bloom, "opt": make_opt, "mixtral": make_mixtral, "qwen2_moe": make_qwen2_moe,
    "deepseek_v3": make_deepseek_v3, "bert": make_bert, "roberta": make_roberta, "distilbert": make_distilbert,
    "t5": make_t5, "bart": make_bart, "vit": make_vit, "clip_vision": make_clip_vision, "swin": make_swin,
    "whisper": make_whisper, "wav2vec2": make_wav2vec2,
}
