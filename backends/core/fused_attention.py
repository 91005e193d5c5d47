"""FusedAttention on the backend core: the attention kernel, then its epilogue as a matmul group.

`fuse-attention{epilogue=...}` makes Attention -> merge heads -> Linear (+ bias) (+ residual) one op for
targets whose attention kernel writes the projected row itself. No core target has such a kernel yet, so
before lowering each FusedAttention is split back into Attention + Transpose/Reshape + Linear (+ Add): the
attention still runs its flash kernel and the projection the target's matmul (bias and residual fused into
its epilogue by the core's fusion), instead of the op crashing the lowering. The split is recorded in the
lowered graph's `diagnostics` (no fallback: both parts run generated, scheduled kernels).
"""
from __future__ import annotations

from ...ir import Graph
from ...ir.ops import Binary, Linear, Reshape, Transpose

SWAP_SEQ_HEADS = (0, 2, 1, 3)


def split_fused_attention(graph: Graph) -> Graph:
    """A copy of `graph` with every FusedAttention node rewritten as its parts (`graph` itself if none).

    Node names: the Attention keeps the FusedAttention's name (lowering notes and report rows name it);
    the epilogue's last value keeps the fused output's value name."""
    if not graph.find("FusedAttention"):
        return graph
    g = graph.copy()
    for node in g.find("FusedAttention"):
        op, spec = node.op, node.op.spec
        named = op.named_inputs(node)
        n_attn = len(spec.input_names())
        out_name = node.outputs[0].name
        g.nodes = [n for n in g.nodes if n is not node]
        g._names.discard(node.name)  # the Attention below reuses the name
        attn = g.add(op.attention(), node.inputs[:n_attn], name=node.name, source=node.source)
        o = attn[0]
        if o.name == out_name:  # single-output: the node's name was its value's name; the epilogue's result takes it
            o.name = g.fresh_name(f"{node.name}.attn_out")
        if spec.layout == "bhsd":
            o = g.add1(Transpose(SWAP_SEQ_HEADS), [o], name=f"{node.name}.merge_t", source=node.source)
        merged = g.add1(Reshape((o.shape[0], o.shape[1], spec.num_heads * spec.v_head_dim)), [o],
                        name=f"{node.name}.merge", source=node.source)
        lin_in = [merged, named["out_weight"]] + ([named["out_bias"]] if op.has_out_bias else [])
        y = g.add1(Linear(has_bias=op.has_out_bias), lin_in, name=f"{node.name}.out_proj", source=node.source)
        if op.has_residual:
            y = g.add1(Binary("add"), [y, named["residual"]], name=f"{node.name}.residual", source=node.source)
        y.name = out_name  # graph outputs keep their names
        g.replace_all_uses(node.outputs[0], y)
        for old, new in zip(node.outputs[1:], attn[1:]):
            g.replace_all_uses(old, new)
        g.diagnostics.append({"pass": "split-fused-attention", "node": node.name,
                              "reason": "no fused attention+projection kernel on this target: the attention kernel "
                                        "writes its output, then the projection runs as a matmul "
                                        f"({'with the residual add fused' if op.has_residual else 'plain'})"})
    g.verify()
    return g
