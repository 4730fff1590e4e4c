"""The order in which the Ray executor dispatches a comparison's pieces (`next_piece`): one seed of every loss
first, then the losses whose pieces took longest; and what it buys on a stage of uneven pieces."""

from __future__ import annotations

import heapq

import pytest

from robust_glo.comparison.parallel import next_piece

LOSSES = ["ce", "ls", "evolved", "poly1", "baikal"]
PLAN = [(loss, seed) for loss in LOSSES for seed in range(3)]


def _order(plan, cost, slots):
    """Simulate `slots` workers taking pieces from `next_piece`; returns (dispatch order, makespan)."""
    remaining, seconds, dispatched, order = list(plan), {}, {}, []
    running: list[tuple[float, tuple[str, int], float]] = []  # (finish time, piece, start)
    now = 0.0
    while remaining or running:
        while remaining and len(running) < slots:
            piece = next_piece(remaining, seconds, dispatched)
            remaining.remove(piece)
            dispatched[piece[0]] = dispatched.get(piece[0], 0) + 1
            order.append(piece)
            heapq.heappush(running, (now + cost[piece], piece, now))
        now, piece, start = heapq.heappop(running)
        seconds.setdefault(piece[0], []).append(now - start)
    return order, now


def test_every_loss_first_seed_goes_first_then_the_slowest_loss():
    cost = {p: (60.0 if p[0] == "baikal" else 10.0) for p in PLAN}
    order, _ = _order(PLAN, cost, slots=2)
    assert order[:5] == [(loss, 0) for loss in LOSSES]
    assert sorted(order) == sorted(PLAN)  # every piece exactly once
    # Once baikal is timed, its remaining seeds go before any cheaper loss's still waiting.
    first_baikal_after = order.index(("baikal", 1))
    assert all(p[0] == "baikal" or p[1] == 0 or order.index(p) > first_baikal_after for p in order[5:])


def test_ties_and_timed_losses_keep_plan_order():
    remaining = [("a", 1), ("b", 1), ("a", 2)]
    assert next_piece(remaining, {"a": [5.0], "b": [5.0]}) == ("a", 1)
    assert next_piece(remaining, {"a": [1.0], "b": [5.0]}) == ("b", 1)
    assert next_piece(remaining, {"b": [5.0]}) == ("a", 1)  # a not timed yet: it goes first
    assert next_piece(remaining, {}, {"a": 1}) == ("b", 1)  # b has fewer pieces dispatched
    with pytest.raises(ValueError, match="no piece"):
        next_piece([], {})


def test_learned_longest_first_beats_the_plan_order_on_the_quick_suites_pieces():
    """The attack pieces' seconds of the committed quick run (its log: "evaluated in", plus the ce pieces'
    transfer crafting), on two workers: the plan order leaves the slow Baikal
    pieces for last; dispatching by learned cost must finish sooner, and never later than plan order on
    uniform pieces."""
    measured = {
        "ce": [47, 42, 40], "ls": [38, 35, 16], "evolved": [28, 8, 10], "poly1": [26, 28, 26], "baikal": [87, 57, 58],
    }  # fmt: skip
    cost = {(loss, seed): float(measured[loss][seed]) for loss, seed in PLAN}
    fifo = {}
    for piece in PLAN:  # plan order on two workers, as when every piece is queued at once
        worker = min(fifo, key=fifo.get) if len(fifo) == 2 else len(fifo)
        fifo[worker] = fifo.get(worker, 0.0) + cost[piece]
    _, learned = _order(PLAN, cost, slots=2)
    assert learned < max(fifo.values())
    assert learned <= sum(cost.values()) / 2 + max(cost.values())  # Graham's list-scheduling bound
    _, uniform = _order(PLAN, {p: 10.0 for p in PLAN}, slots=2)
    assert uniform == 80.0  # 15 equal pieces on 2 workers: 8 rounds
