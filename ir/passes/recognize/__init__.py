"""Helpers of the lift-attention pass: each module recognizes one piece of spelled-out attention.

common (context, rejection, op emitters) · scale · softcap · mask · scores (softmax -> q·kᵀ chain) ·
axis_map (batch axes -> bhsd and back) · repeat_kv · rope · kv_cache.
"""
