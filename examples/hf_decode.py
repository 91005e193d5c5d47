"""Compile a Hugging Face causal LM's forward for a decode loop (the step `generate()` runs per token).

Recipe (any `transformers` decoder whose attention goes through its StaticCache, e.g. Llama, Mistral, Qwen2):

1. Wrap the model so the cache tensors are *inputs* of the step: per layer the key and value buffers
   (batch, kv_heads, max_len, head_dim) and the layer's fill counter (a 0-d int64 tensor). `StaticCache`
   writes the new key/value rows with `index_copy_` and advances the counter with `add_`; attncc imports those
   as in-place writes into the tensors you pass, exactly as torch does (only the new rows move).
2. `attncc.compile(DecodeStep(model, max_len), (ids, cache_position, *cache))` once: ids (batch, 1).
3. Loop: `logits = step(ids, position, *cache)`; pick the next token; feed it back. The prompt can be fed
   through the same step one token at a time (as here), or through a second compile of the model with a
   dynamic sequence length (see examples/generate.py for that split).

    python examples/hf_decode.py [--tokens 16] [--max-len 64]

The script checks the tokens against `model.generate(..., cache_implementation="static")` (greedy).
"""
from __future__ import annotations

import argparse
import time

import torch


class DecodeStep(torch.nn.Module):
    """One generate()-shaped decode step of a HF causal LM over a StaticCache whose tensors are inputs."""

    def __init__(self, model, max_len: int):
        super().__init__()
        from transformers import StaticCache

        self.model = model
        self.cache = StaticCache(config=model.config, max_cache_len=max_len)

    def forward(self, ids: torch.Tensor, cache_position: torch.Tensor, *cache: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.cache.layers):   # point the cache at this call's tensors
            layer.keys, layer.values, layer.cumulative_length = cache[3 * i], cache[3 * i + 1], cache[3 * i + 2]
            layer.is_initialized, layer.device = True, cache[0].device
            layer.batch_size, layer.num_heads = cache[3 * i].shape[:2]
            layer.k_head_dim, layer.v_head_dim = cache[3 * i].shape[3], cache[3 * i + 1].shape[3]
        out = self.model(input_ids=ids, past_key_values=self.cache, cache_position=cache_position, use_cache=True)
        return out.logits


def empty_cache(model, max_len: int, batch: int = 1) -> list[torch.Tensor]:
    """Zeroed (keys, values, fill counter) per layer, shaped as StaticCache allocates them."""
    cfg = model.config
    kv_heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    out: list[torch.Tensor] = []
    for _ in range(cfg.num_hidden_layers):
        out += [torch.zeros(batch, kv_heads, max_len, head_dim), torch.zeros(batch, kv_heads, max_len, head_dim),
                torch.tensor(0)]
    return out


def greedy(step, model, prompt: list[int], tokens: int, max_len: int) -> tuple[list[int], list[float]]:
    """Feed the prompt, then `tokens` greedy tokens, through `step`; (new tokens, seconds per decode step)."""
    cache = empty_cache(model, max_len)
    out, times, cur = [], [], prompt[0]
    for p in range(len(prompt) + tokens - 1):
        start = time.perf_counter()
        logits = step(torch.tensor([[cur]]), torch.tensor([p]), *cache)
        times.append(time.perf_counter() - start)
        nxt = int(logits[0, -1].argmax())
        cur = prompt[p + 1] if p + 1 < len(prompt) else nxt
        if p + 1 >= len(prompt):
            out.append(nxt)
    return out, times[len(prompt):]


def tiny_llama():
    """A small random-weight Llama (no download)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).eval()


def main(argv: list[str] | None = None) -> int:
    import attncc

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--max-len", type=int, default=64)
    args = parser.parse_args(argv)
    model = tiny_llama()
    prompt = [5, 9, 3, 17]
    step = DecodeStep(model, args.max_len).eval()
    start = time.perf_counter()
    compiled = attncc.compile(step, (torch.tensor([[prompt[0]]]), torch.tensor([0]), *empty_cache(model, args.max_len)))
    print(f"compiled the decode step in {time.perf_counter() - start:.1f} s "
          f"({len(compiled.graph.attention_ops())} attention sites, "
          f"{[n.op.op_name for n in compiled.graph.nodes].count('IndexCopy')} in-place cache writes)")
    mine, times = greedy(compiled, model, prompt, args.tokens, args.max_len)
    with torch.no_grad():
        ref = model.generate(torch.tensor([prompt]), max_new_tokens=args.tokens, do_sample=False,
                             cache_implementation="static")[0, len(prompt):].tolist()
    same = mine == ref
    ms = sorted(times)[len(times) // 2] * 1e3 if times else float("nan")
    print(f"{args.tokens} greedy tokens identical to model.generate(static cache): {same}")
    print(f"median decode step {ms:.2f} ms; tokens: {mine}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
