"""The Attention op (one first-class op for every attention site) and the Rotary op."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from .. import dims as D
from ..errors import require
from ..types import TensorType, broadcast_shapes
from .attention_spec import AttentionSpec, RopeSpec, ROPE_STYLES, SpecError
from .base import Op, input_types, register_op


@dataclass(frozen=True)
class Tiling:
    """Tile sizes chosen by the tiling pass; codegen and the cost model read the same numbers."""

    q_block: int | None = None
    kv_block: int | None = None
    num_splits: int | None = None
    vector_width: int | None = None
    threads: int | None = None
    target: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@register_op
@dataclass(frozen=True)
class Attention(Op):
    """softmax(mask(softcap(scale * Q Kᵀ))) V for the variant described by `spec`.

    Inputs follow `spec.input_names()`; outputs `spec.output_names()`. Layout "bhsd":
    query (B, Hq, Sq, Dqk), key (B, Hkv, Sk, Dqk), value (B, Hkv, Sk, Dv), output (B, Hq, Sq, Dv).
    With a KV cache, past_key/past_value (B, Hkv, P, D) are concatenated in front of the new
    key/value, and the masks see Skv = P + Sk keys. Feature slots (kv_source, head_mixing)
    may redefine what key/value hold; their `infer_kv` hook says how.
    """

    spec: AttentionSpec = field(default=None)
    tiling: Tiling | None = None
    op_name: ClassVar[str] = "Attention"
    num_inputs: ClassVar = (3, None)

    def attrs(self) -> dict[str, Any]:
        out = {"spec": self.spec.to_dict()}
        if self.tiling is not None:
            out["tiling"] = self.tiling.to_dict()
        return out

    @classmethod
    def from_attrs(cls, attrs):
        tiling = Tiling(**attrs["tiling"]) if attrs.get("tiling") else None
        return cls(spec=AttentionSpec.from_dict(attrs["spec"]), tiling=tiling)

    def named_inputs(self, node) -> dict[str, Any]:
        """Map input name -> value for `node`."""
        return dict(zip(self.spec.input_names(), node.inputs))

    def infer(self, node):
        s = self.spec
        require(isinstance(s, AttentionSpec), node, "Attention needs an AttentionSpec")
        try:
            s.validate()
        except SpecError as e:
            require(False, node, f"invalid spec: {e}")
        names = s.input_names()
        require(len(node.inputs) == len(names), node,
                f"spec expects inputs {list(names)} ({len(names)}), got {len(node.inputs)}")
        t = dict(zip(names, input_types(node)))
        for feat in s.features_list():
            hook = getattr(feat, "infer", None)
            if hook is not None:  # a variant feature that reshapes the computation owns its shape rules
                return hook(s, t, node)
        q, k, v = t["query"], t["key"], t["value"]
        for name in ("query", "key", "value"):
            require(t[name].rank == 4, node, f"{name} must be rank 4 ({s.layout}), got {t[name]}")
            require(t[name].is_float, node, f"{name} must be a float tensor, got {t[name].dtype}")
        require(q.dtype == k.dtype == v.dtype, node, f"query/key/value dtypes differ: {q.dtype}, {k.dtype}, {v.dtype}")
        seq_ax, head_ax = (2, 1) if s.layout == "bhsd" else (1, 2)
        B, Sq = q.shape[0], q.shape[seq_ax]
        Sk = k.shape[seq_ax]
        for name, tt, heads, dim in (("query", q, s.num_heads, s.head_dim), ("key", k, s.num_kv_heads, s.head_dim),
                                     ("value", v, s.num_kv_heads, s.v_head_dim)):
            require(D.equal(tt.shape[head_ax], heads), node, f"{name} has {tt.shape[head_ax]} heads, spec says {heads}")
            require(D.equal(tt.shape[3], dim), node, f"{name} head dim is {tt.shape[3]}, spec says {dim}")
            require(D.equal(tt.shape[0], B), node, f"{name} batch {tt.shape[0]} differs from query batch {B}")
        require(D.equal(v.shape[seq_ax], Sk), node, f"key and value lengths differ: {Sk} vs {v.shape[seq_ax]}")
        kv_total = Sk
        outs = []
        if s.kv_cache:
            pk, pv = t["past_key"], t["past_value"]
            require(pk.rank == 4 and pv.rank == 4, node, "past_key/past_value must be rank 4")
            require(D.equal(pk.shape[head_ax], s.num_kv_heads) and D.equal(pk.shape[3], s.head_dim), node,
                    f"past_key {pk} does not match {s.num_kv_heads} kv heads x head dim {s.head_dim}")
            require(D.equal(pv.shape[3], s.v_head_dim), node, f"past_value {pv} head dim differs from v_head_dim {s.v_head_dim}")
            require(D.equal(pk.shape[seq_ax], pv.shape[seq_ax]), node, "past_key and past_value lengths differ")
            kv_total = D.add(pk.shape[seq_ax], Sk)
            pshape = list(k.shape)
            pshape[seq_ax] = kv_total
            vshape = list(v.shape)
            vshape[seq_ax] = kv_total
            outs = [k.with_shape(pshape), v.with_shape(vshape)]
        if s.mask.input != "none":
            m = t["mask"]
            want = "bool" if s.mask.input == "bool" else q.dtype
            require(m.dtype == want or (s.mask.input == "additive" and m.is_float), node,
                    f"{s.mask.input} mask must be {want}, got {m.dtype}")
            require(m.rank <= 4, node, f"mask rank must be <= 4, got {m}")
            full = (B, s.num_heads, Sq, kv_total)
            try:
                broadcast_shapes(m.shape, full)
            except Exception:
                require(False, node, f"mask {m} does not broadcast to (B, Hq, Sq, Skv) = {full}")
        if s.mask.kv_lengths:
            kl = t["kv_lengths"]
            require(kl.dtype in ("int64", "int32") and kl.rank == 1, node, f"kv_lengths must be an int vector (B,), got {kl}")
        if s.rope is not None:
            require(s.rope.style in ROPE_STYLES, node, f"unknown rope style {s.rope.style}")
            require(D.equal(Sq, Sk), node, f"rope applies to q and new k at the same positions; q len {Sq} != k len {Sk}")
            for name in ("rope_cos", "rope_sin"):
                c = t[name]
                require(c.rank == 3 and D.equal(c.shape[-1], s.rope.rotary_dim // 2) and D.equal(c.shape[1], Sq), node,
                        f"{name} must be (B or 1, Sq, rotary_dim/2) = (.., {Sq}, {s.rope.rotary_dim // 2}), got {c}")
        oshape = (B, s.num_heads, Sq, s.v_head_dim) if s.layout == "bhsd" else (B, Sq, s.num_heads, s.v_head_dim)
        return [TensorType(q.dtype, oshape)] + outs


@register_op
@dataclass(frozen=True)
class Rotary(Op):
    """Rotary position embedding on x (..., S, D) with cos/sin (B or 1, S, rotary_dim/2) — see RopeSpec."""

    style: str = "rotate_half"
    rotary_dim: int = 0
    op_name: ClassVar[str] = "Rotary"
    num_inputs: ClassVar = (3, 3)

    def infer(self, node):
        x, c, s = input_types(node)
        try:
            RopeSpec(self.style, self.rotary_dim)
        except SpecError as e:
            require(False, node, str(e))
        require(x.rank == 4, node, f"rotary input must be rank 4 (B, H, S, D), got {x}")
        require(self.rotary_dim <= x.shape[-1] if isinstance(x.shape[-1], int) else True, node,
                f"rotary_dim {self.rotary_dim} exceeds head dim {x.shape[-1]}")
        for name, t in (("cos", c), ("sin", s)):
            require(t.rank == 3 and D.equal(t.shape[-1], self.rotary_dim // 2), node,
                    f"{name} must be (B or 1, S, rotary_dim/2), got {t}")
        return [x]
