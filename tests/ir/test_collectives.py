"""Collective ops: verify, print/parse and JSON round trips, bytes; the lock-step interpreter on hand-built
rank programs against numpy identities (a sum of partial matmuls is the matmul, a gather of blocks is the
whole), and its errors (a rank program run alone, a mismatched or deadlocked collective)."""
from __future__ import annotations

import numpy as np
import pytest

from attncc import ir
from attncc.ir import AllGather, AllReduce, AllToAll, IRError, Recv, ReduceScatter, Send, message_bytes
from attncc.ir.interpreter import run_ranks
from attncc.ir.sharded import ShardedProgram


def collective_graph():
    g = ir.Graph("coll")
    x = g.add_input("x", "float32", ("T", 8))
    a = g.add1(AllReduce(2), [x], name="ar")
    b = g.add1(AllGather(2, axis=0), [a], name="ag")
    c = g.add1(ReduceScatter(2, axis=1, reduce="max"), [b], name="rs")
    d = g.add1(AllToAll(2, split_axis=1, concat_axis=0, group="ep"), [c], name="a2a")
    r = g.add1(Recv(0, ("T", 8), "float32"), [], name="recv")
    s = g.add1(Send(1), [d], name="send")
    g.set_outputs([d, r, s])
    g.verify()
    return g


def test_collective_shapes_print_parse_and_json_round_trip():
    g = collective_graph()
    shapes = {n.name: n.outputs[0].shape for n in g.nodes}
    assert shapes == {"ar": ("T", 8), "ag": ("2*T", 8), "rs": ("2*T", 4), "a2a": ("4*T", 2),
                      "recv": ("T", 8), "send": ("4*T", 2)}
    text = ir.print_ir(g)
    assert 'AllToAll {"ranks": 2, "split_axis": 1, "concat_axis": 0, "group": "ep"}' in text
    assert ir.print_ir(ir.parse_ir(text)) == text
    back = ir.graph_from_json(ir.graph_to_json(g))
    back.verify()
    assert ir.print_ir(back) == text


def test_message_bytes_follow_the_nccl_tests_size_convention():
    g = ir.Graph("b")
    x = g.add_input("x", "bfloat16", (4, 8))
    ar = g.add1(AllReduce(4), [x])
    ag = g.add1(AllGather(4, axis=0), [x])
    rs = g.add1(ReduceScatter(4, axis=0), [x])
    g.set_outputs([ar, ag, rs])
    nodes = {n.op.op_name: n for n in g.nodes}
    assert message_bytes(nodes["AllReduce"]) == 64       # the buffer
    assert message_bytes(nodes["AllGather"]) == 256      # the gathered output
    assert message_bytes(nodes["ReduceScatter"]) == 64   # the full input


@pytest.mark.parametrize("op, message", [
    (ReduceScatter(3, axis=1), "does not divide over 3 ranks"),
    (AllReduce(2, reduce="avg"), "unknown reduction 'avg'"),
    (AllGather(0, axis=0), "ranks must be an int >= 1"),
    (AllReduce(2, group="dp"), "unknown group 'dp'"),
    (Send(1, group="tp"), "between pipeline stages"),
])
def test_bad_collectives_are_named_errors(op, message):
    g = ir.Graph("bad")
    x = g.add_input("x", "float32", (4, 8))
    with pytest.raises(IRError, match=message):
        g.add1(op, [x], name="c")


def test_run_graph_treats_one_rank_collectives_as_identity_and_refuses_more():
    g = ir.Graph("one")
    x = g.add_input("x", "float32", (2, 3))
    g.set_outputs([g.add1(AllReduce(1), [x])])
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(ir.run_graph(g, [a])[0], a)
    g2 = ir.Graph("two")
    x = g2.add_input("x", "float32", (2, 3))
    g2.set_outputs([g2.add1(AllReduce(2), [x], name="ar")])
    with pytest.raises(IRError, match="node 'ar'.*run_ranks"):
        ir.run_graph(g2, [a])


def _row_parallel_rank(w_block: np.ndarray, rank: int) -> ir.Graph:
    """x (4, 6) @ W (6, 5) with rank r holding columns r of x's features and rows of W: partial + all-reduce."""
    g = ir.Graph(f"rank{rank}")
    x = g.add_input("x", "float32", (4, 6))
    xs = g.add1(ir.Slice(1, 3 * rank, 3 * rank + 3), [x])
    y = g.add1(ir.Linear(), [xs, g.add_constant(w_block, "w")])
    full = g.add1(AllReduce(2), [y])
    gathered = g.add1(AllGather(2, axis=1), [xs])
    g.set_outputs([full, gathered])
    return g


def test_lock_step_all_reduce_and_all_gather_equal_the_whole_matmul():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((4, 6)).astype(np.float32), rng.standard_normal((6, 5)).astype(np.float32)
    prog = ShardedProgram({"tp": 2, "ep": 1, "pp": 1, "dp": 1}, [_row_parallel_rank(w[3 * r:3 * r + 3], r)
                                                                 for r in range(2)], ["x"], [(0, 0), (1, 1)])
    y, xg = run_ranks(prog, [x])
    np.testing.assert_allclose(y, x @ w, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(xg, x)


def test_lock_step_reduce_scatter_all_to_all_and_send_recv():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 4)).astype(np.float32)
    ranks = []
    for stage in range(2):
        for e in range(2):
            g = ir.Graph(f"s{stage}e{e}")
            if stage == 0:
                xi = g.add_input("x", "float32", (4, 4))
                scaled = g.add1(ir.Binary("mul"), [xi, g.add_constant(np.float32([e + 1]), "k")])
                rs = g.add1(ReduceScatter(2, axis=0, group="ep"), [scaled])             # (2, 4): rows of 3x
                a2a = g.add1(AllToAll(2, split_axis=1, concat_axis=0, group="ep"), [rs])  # (4, 2)
                g.set_outputs([g.add1(Send(1), [a2a])])
            else:
                got = g.add1(Recv(0, (4, 2), "float32"), [])
                g.set_outputs([g.add1(AllGather(2, axis=1, group="ep"), [got])])
            ranks.append(g)
    prog = ShardedProgram({"tp": 1, "ep": 2, "pp": 2, "dp": 1}, ranks, ["x"], [(2, 0), (3, 0)])
    out2, out3 = run_ranks(prog, [x])
    three = 3 * x
    # rank e holds rows [2e, 2e+2) of 3x; all-to-all over columns stacks both ranks' rows for column block e
    want = np.concatenate([np.concatenate([three[0:2, 2 * e:2 * e + 2], three[2:4, 2 * e:2 * e + 2]], axis=0)
                           for e in range(2)], axis=1)
    np.testing.assert_allclose(out2, want, rtol=1e-6)
    np.testing.assert_allclose(out3, want, rtol=1e-6)


def test_lock_step_reports_mismatched_and_deadlocked_collectives():
    def rank(op):
        g = ir.Graph("r")
        x = g.add_input("x", "float32", (2, 2))
        g.set_outputs([g.add1(op, [x], name="c")])
        return g

    plan = {"tp": 2, "ep": 1, "pp": 1, "dp": 1}
    x = np.ones((2, 2), np.float32)
    bad = ShardedProgram(plan, [rank(AllReduce(2)), rank(AllGather(2, axis=0))], ["x"], [(0, 0)])
    with pytest.raises(IRError, match="different collectives"):
        run_ranks(bad, [x])
    g = ir.Graph("r")
    g.set_outputs([g.add1(Recv(1, (2, 2), "float32"), [], name="wait")])
    stuck = ShardedProgram({"tp": 1, "ep": 1, "pp": 2, "dp": 1}, [g, g], [], [(0, 0)])
    with pytest.raises(IRError, match="deadlocks: rank 0 at 'wait'"):
        run_ranks(stuck, [])
