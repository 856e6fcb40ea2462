"""Ranks, roles, rows and param ranges of a distributed job, and the parameter server's
arithmetic — in one process, frames passed by hand (the MPI runs are in
test_distributed.py)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

import singa_dsl
from singa_dsl.errors import SingaConfigError
from singa_dsl.run import compile_plan
from singa_dsl.runtime.cluster import Layout, ParamLayout
from singa_dsl.runtime.messages import Frame, Kind, decode, encode
from singa_dsl.runtime.server import ParamServer, initial_range

PROGRAM = """
job j {{ steps: 5  seed: 4 }}
data d {{ train: digits(split: "train", batch: 12) }}
net n {{
  x = input(d.image)
  fc1 = dense(x, 7, w: param(init: gaussian(0, 0.1), lr_scale: 2))
  fc2 = dense(fc1, 10)
  loss = softmax_loss(fc2, d.label)
}}
algorithm bp
updater {updater}
cluster {{ {cluster} }}
"""


def _plan(cluster="", updater="sgd { lr: 0.1 }"):
    return compile_plan(singa_dsl.parse(PROGRAM.format(cluster=cluster, updater=updater),
                                        "j.singa"))


@given(groups=st.integers(1, 4), per=st.integers(1, 4), sgroups=st.sampled_from([1, 2, 4]),
       spg=st.integers(1, 4), separate=st.booleans())
def test_roles_cover_every_rank_once(groups, per, sgroups, spg, separate):
    if groups % sgroups:
        with pytest.raises(SingaConfigError, match="evenly"):
            Layout.from_cluster({"worker_groups": groups, "workers_per_group": per,
                                 "server_groups": sgroups, "servers_per_group": spg})
        return
    lay = Layout(groups, per, sgroups, spg, separate)
    roles = [lay.role(r) for r in range(lay.size)]
    assert [r.rank for r in roles] == list(range(lay.size))
    workers = [(r.group, r.index) for r in roles if r.kind == "worker"]
    servers = [(r.group, r.index) for r in roles if r.kind == "server"]
    assert workers == [(g, j) for g in range(groups) for j in range(per)]
    assert servers == [(g, s) for g in range(sgroups) for s in range(spg)]
    for g in range(groups):
        assert g in lay.worker_groups_of(lay.server_group_of(g))
        for j in range(per):
            assert lay.role(lay.worker_rank(g, j)) == roles[lay.worker_rank(g, j)]
    assert sorted(lay.hosts_order()) == list(range(lay.size))
    driver = lay.role(lay.driver)
    assert (driver.kind, driver.group, driver.index) == ("worker", 0, 0)
    kinds = [r.kind for r in roles]
    if separate:       # servers on hosts of their own: after every worker
        assert kinds == ["worker"] * lay.nworkers + ["server"] * lay.nservers
    else:              # SINGA's co-located processes: a worker and a server side by side
        pairs = min(lay.nworkers, lay.nservers)
        assert kinds[:2 * pairs] == ["worker", "server"] * pairs


@given(per=st.integers(1, 7), batch=st.integers(1, 300))
def test_rows_split_the_batch_exactly(per, batch):
    lay = Layout(1, per, 1, 1)
    if batch < per:
        with pytest.raises(SingaConfigError, match="cannot be shared"):
            lay.rows(0, batch)
        return
    rows = [lay.rows(j, batch) for j in range(per)]
    assert rows[0][0] == 0 and rows[-1][1] == batch
    assert all(a[1] == b[0] for a, b in zip(rows, rows[1:]))
    sizes = [hi - lo for lo, hi in rows]
    assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("spg, sgroups", [(1, 1), (2, 1), (3, 1), (2, 2), (4, 2), (1, 3)])
def test_servers_own_contiguous_ranges_covering_the_params(spg, sgroups):
    plan = _plan()
    lay = Layout(sgroups, 1, sgroups, spg)
    pl = ParamLayout.build(plan.params, lay)
    assert pl.total == sum(int(np.prod(p.shape)) for p in plan.params) == 64 * 7 + 7 + 70 + 10
    assert pl.servers[0][0] == 0 and pl.servers[-1][1] == pl.total
    assert all(a[1] == b[0] for a, b in zip(pl.servers, pl.servers[1:]))
    assert pl.masters[0][0] == 0 and pl.masters[-1][1] == pl.total
    assert {g for _, _, g in pl.masters} <= set(range(sgroups))
    # SINGA's Slice balances the servers to within a tenth of an even share
    even = pl.total / spg
    assert all(abs((hi - lo) - even) <= even / 10 + 1 for lo, hi in pl.servers)
    if sgroups > 1:                 # every server group masters a run of the params
        assert {g for _, _, g in pl.masters} == set(range(sgroups))


class FakeNet:
    """Frames between in-process servers and test 'workers', through the real codec."""

    def __init__(self):
        self.queues: dict[int, list] = {}
        self.servers: dict[int, ParamServer] = {}

    def transport(self, rank):
        net = self

        class T:
            def send(self, dst, frame):
                net.queues.setdefault(dst, []).append(decode(encode(frame)))

            def wait(self):
                return net.queues[rank].pop(0)

            def flush(self):
                pass
        return T()

    def deliver(self):
        """Let every server handle what it has been sent, until all is quiet."""
        busy = True
        while busy:
            busy = False
            for rank, server in self.servers.items():
                while self.queues.get(rank):
                    server.handle(self.queues[rank].pop(0))
                    busy = True

    def take(self, rank, kind):
        q = self.queues.get(rank, [])
        frames = [f for f in q if f.kind is kind]
        self.queues[rank] = [f for f in q if f.kind is not kind]
        return frames


def _lr(pl):
    """The learning rate per value: 0.1, doubled for fc1.w (its lr_scale)."""
    lr = np.full(pl.total, 0.1)
    fc1 = next(p for p in pl.params if p.key == "fc1.w")
    lr[fc1.lo:fc1.hi] *= 2
    return lr


def _push(net, lay, pl, rank, step, grad, weight=1.0):
    """What a worker sends: each param's part to the server of its group holding it."""
    group = lay.server_group_of(lay.role(rank).group)
    for pi, p in enumerate(pl.params):
        for s, (lo, hi) in enumerate(pl.servers):
            a, b = max(lo, p.lo), min(hi, p.hi)
            if a < b:
                net.transport(rank).send(lay.server_rank(group, s), Frame(
                    Kind.UPDATE, rank, pi, step, weight, grad[a:b]))


def _replies(net, lay, pl, rank):
    """The R_UPDATE frames a worker got, put together into the flat vector."""
    frames = net.take(rank, Kind.R_UPDATE)
    out = np.full(pl.total, np.nan)
    for f in frames:
        s = lay.role(f.src).index
        p = pl.params[f.target]
        a, b = max(pl.servers[s][0], p.lo), min(pl.servers[s][1], p.hi)
        out[a:b] = f.floats()
    return frames, out


def _servers(plan, lay, net):
    pl = ParamLayout.build(plan.params, lay, {u.param for u in plan.updates})
    for g in range(lay.server_groups):
        for s in range(lay.servers_per_group):
            role = lay.role(lay.server_rank(g, s))
            values, state = initial_range(plan, pl, role, {}, {})
            net.servers[role.rank] = ParamServer(plan, lay, pl, role, net.transport(role.rank),
                                                 values, state)
    return pl


def test_a_group_update_is_the_weighted_sum_then_the_updater():
    plan = _plan(updater="sgd { lr: 0.1  momentum: 0.9  weight_decay: 0.01 }")
    lay = Layout(1, 2, 1, 2)
    net = FakeNet()
    pl = _servers(plan, lay, net)
    w0 = np.concatenate([net.servers[lay.server_rank(0, s)].values for s in range(2)]
                        ).astype(np.float64)
    rng = np.random.default_rng(0)
    h = np.zeros(pl.total)
    w = w0.copy()
    for step in range(3):
        grads = [rng.normal(size=pl.total).astype(np.float32) for _ in range(2)]
        for j, g in enumerate(grads):
            _push(net, lay, pl, lay.worker_rank(0, j), step, g, 0.5)
        net.deliver()
        # the reference: float64, by hand, with fc1's lr_scale 2
        total = grads[0].astype(np.float64) + grads[1]
        lr = _lr(pl)
        gg = total + 0.01 * w
        h = 0.9 * h - lr * gg
        w = w + h
        for j in range(2):
            replies, got = _replies(net, lay, pl, lay.worker_rank(0, j))
            # one reply per part of a param a server holds; a param may straddle two
            assert len(replies) >= len(pl.params) and all(f.step == step + 1 for f in replies)
            np.testing.assert_allclose(got, w, rtol=2e-5, atol=2e-6)
        assert all(net.servers[lay.server_rank(0, s)].version == step + 1 for s in range(2))


def test_no_update_is_held_back_until_the_whole_group_sent():
    plan = _plan()
    lay = Layout(1, 3, 1, 1)
    net = FakeNet()
    pl = _servers(plan, lay, net)
    for j in range(2):
        _push(net, lay, pl, lay.worker_rank(0, j), 0, np.ones(pl.total, np.float32), 1 / 3)
    net.deliver()
    assert not net.take(lay.worker_rank(0, 0), Kind.R_UPDATE) and net.servers[lay.server_rank(0, 0)].version == 0


def test_hogwild_sync_loses_no_update():
    """Two server groups, each updated by its own worker group with plain SGD (updates add
    up): after the final syncs, each run's master holds the initial value plus every update
    of both groups."""
    plan = _plan(cluster="worker_groups: 2  server_groups: 2  sync_every: 2")
    lay = Layout(2, 1, 2, 1, sync_every=2)
    net = FakeNet()
    pl = _servers(plan, lay, net)
    s0, s1 = lay.server_rank(0, 0), lay.server_rank(1, 0)
    init = net.servers[s0].values.astype(np.float64).copy()
    np.testing.assert_array_equal(init, net.servers[s1].values)
    rng = np.random.default_rng(1)
    applied = np.zeros(pl.total)
    for step in range(5):
        for g, server in ((0, s0), (1, s1)):
            grad = rng.normal(size=pl.total).astype(np.float32)
            _push(net, lay, pl, lay.worker_rank(g, 0), step, grad)
            applied -= _lr(pl) * grad.astype(np.float64)
            net.deliver()
    for server in (s0, s1):
        net.servers[server]._sync()
    net.deliver()
    masters = {0: net.servers[s0].values, 1: net.servers[s1].values}
    for lo, hi, grp in pl.masters:
        np.testing.assert_allclose(masters[grp][lo:hi], init[lo:hi] + applied[lo:hi],
                                   rtol=1e-5, atol=1e-5)
    assert {g for _, _, g in pl.masters} == {0, 1}   # both groups master some of the params


@pytest.mark.parametrize("cluster, message", [
    ("worker_groups: 2  reduce: ring", "reduce: ring sums the gradients of one synchronous "
     "group, but worker_groups is 2"),
    ("server_groups: 2  worker_groups: 2  reduce: ring", "but server_groups is 2"),
    ("framework: downpour  reduce: ring", "reduce: ring cannot serve framework downpour"),
])
def test_reduce_ring_is_for_one_synchronous_group(cluster, message):
    from singa_dsl.errors import SingaError
    with pytest.raises(SingaError, match=message):
        _plan(cluster)


def test_a_ring_job_has_only_worker_ranks():
    plan = _plan("workers_per_group: 3  servers_per_group: 2  reduce: ring")
    lay = Layout.from_cluster(plan.cluster)
    assert lay.ring and lay.size == 3 and lay.nservers == 0
    assert [lay.role(r).kind for r in range(3)] == ["worker"] * 3
