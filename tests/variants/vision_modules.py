"""Attention modules of published vision families, reproduced from timm 1.0.31 (timm/models/convit.py GPSA,
coat.py FactorAttnConvRelPosEnc, mvitv2.py MultiScaleAttention + cal_rel_pos_type) so tests need no timm install
(timm pulls a torchvision that does not load against this torch build). Dropouts dropped (eval); code otherwise as
published, with the smallest configs."""
from __future__ import annotations

import torch
from torch import nn


class GPSA(nn.Module):
    """ConViT gated positional self-attention: (1 - σ(g_h))·softmax(q·kᵀ·s) + σ(g_h)·softmax(pos_proj(rel)), renormalized."""

    def __init__(self, dim, num_heads=4, qkv_bias=False):
        super().__init__()
        self.num_heads, self.dim = num_heads, dim
        self.scale = (dim // num_heads) ** -0.5
        self.qk = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.pos_proj = nn.Linear(3, num_heads)
        self.gating_param = nn.Parameter(torch.linspace(-1.0, 1.0, num_heads))

    @staticmethod
    def get_rel_indices(num_patches: int) -> torch.Tensor:
        img_size = int(num_patches ** .5)
        rel_indices = torch.zeros(1, num_patches, num_patches, 3)
        ind = torch.arange(img_size, dtype=torch.float32).view(1, -1) - torch.arange(img_size, dtype=torch.float32).view(-1, 1)
        indx = ind.repeat(img_size, img_size)
        indy = ind.repeat_interleave(img_size, dim=0).repeat_interleave(img_size, dim=1)
        rel_indices[:, :, :, 2] = (indx ** 2 + indy ** 2).unsqueeze(0)
        rel_indices[:, :, :, 1] = indy.unsqueeze(0)
        rel_indices[:, :, :, 0] = indx.unsqueeze(0)
        return rel_indices

    def forward(self, x):
        B, N, C = x.shape
        rel_indices = self.get_rel_indices(N)
        qk = self.qk(x).reshape(B, N, 2, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k = qk[0], qk[1]
        pos_score = self.pos_proj(rel_indices.expand(B, -1, -1, -1)).permute(0, 3, 1, 2)
        patch_score = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        pos_score = pos_score.softmax(dim=-1)
        gating = self.gating_param.view(1, -1, 1, 1)
        attn = (1. - torch.sigmoid(gating)) * patch_score + torch.sigmoid(gating) * pos_score
        attn = attn / attn.sum(dim=-1).unsqueeze(-1)
        v = self.v(x).reshape(B, N, self.num_heads, C // self.num_heads).permute(0, 2, 1, 3)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))


class FactorAttn(nn.Module):
    """CoaT FactorAttnConvRelPosEnc without its conv relative position encoding (crpe=None):
    scale·q·(softmax over tokens of k)ᵀ·v."""

    def __init__(self, dim, num_heads=4, qkv_bias=False):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4).unbind(0)
        factor_att = q @ (k.softmax(dim=2).transpose(-1, -2) @ v)
        return self.proj((self.scale * factor_att).transpose(1, 2).reshape(B, N, C))


def cal_rel_pos_type(attn, q, has_cls_token, q_size, k_size, rel_pos_h, rel_pos_w):
    """timm mvitv2.cal_rel_pos_type (MViTv2's decomposed relative position: q·table terms per axis)."""
    sp_idx = 1 if has_cls_token else 0
    q_h, q_w = q_size
    k_h, k_w = k_size
    q_h_ratio, k_h_ratio = max(k_h / q_h, 1.0), max(q_h / k_h, 1.0)
    dist_h = (torch.arange(q_h).unsqueeze(-1) * q_h_ratio - torch.arange(k_h).unsqueeze(0) * k_h_ratio)
    dist_h += (k_h - 1) * k_h_ratio
    q_w_ratio, k_w_ratio = max(k_w / q_w, 1.0), max(q_w / k_w, 1.0)
    dist_w = (torch.arange(q_w).unsqueeze(-1) * q_w_ratio - torch.arange(k_w).unsqueeze(0) * k_w_ratio)
    dist_w += (k_w - 1) * k_w_ratio
    rel_h, rel_w = rel_pos_h[dist_h.long()], rel_pos_w[dist_w.long()]
    B, n_head, q_N, dim = q.shape
    r_q = q[:, :, sp_idx:].reshape(B, n_head, q_h, q_w, dim)
    rel_h = torch.einsum("byhwc,hkc->byhwk", r_q, rel_h)
    rel_w = torch.einsum("byhwc,wkc->byhwk", r_q, rel_w)
    attn[:, :, sp_idx:, sp_idx:] = (attn[:, :, sp_idx:, sp_idx:].view(B, -1, q_h, q_w, k_h, k_w)
                                    + rel_h.unsqueeze(-1) + rel_w.unsqueeze(-2)).view(B, -1, q_h * q_w, k_h * k_w)
    return attn


class MultiScaleAttention(nn.Module):
    """MViTv2 MultiScaleAttention, mode="conv", pooled K/V (stride 2), spatial relative position, residual pooling,
    no cls token, no q pooling."""

    def __init__(self, dim=32, num_heads=2, feat=4, stride_kv=2):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        d = self.head_dim
        self.pool_k = nn.Conv2d(d, d, 3, stride=stride_kv, padding=1, groups=d, bias=False)
        self.pool_v = nn.Conv2d(d, d, 3, stride=stride_kv, padding=1, groups=d, bias=False)
        self.norm_k, self.norm_v = nn.LayerNorm(d), nn.LayerNorm(d)
        self.feat, self.kv = feat, feat // stride_kv
        rel = 2 * max(feat, self.kv) - 1
        self.rel_pos_h = nn.Parameter(0.02 * torch.randn(rel, d))
        self.rel_pos_w = nn.Parameter(0.02 * torch.randn(rel, d))

    def _pool(self, t, pool, norm):
        B, H, N, d = t.shape
        t = t.reshape(B * H, self.feat, self.feat, d).permute(0, 3, 1, 2)
        t = pool(t)
        t = t.reshape(B, H, d, -1).transpose(2, 3)
        return norm(t)

    def forward(self, x):
        B, N, _ = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(dim=0)
        k, v = self._pool(k, self.pool_k, self.norm_k), self._pool(v, self.pool_v, self.norm_v)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        attn = cal_rel_pos_type(attn, q, False, (self.feat, self.feat), (self.kv, self.kv), self.rel_pos_h, self.rel_pos_w)
        attn = attn.softmax(dim=-1)
        x = attn @ v + q       # residual pooling
        return self.proj(x.transpose(1, 2).reshape(B, N, -1))
