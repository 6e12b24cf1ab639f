"""FairGate (FIFO admission) and GroupJoinBatcher (coalesced group joins): behaviour only."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from minio_manager.admission import FairGate
from minio_manager.errors import ServiceBusy
from minio_manager.objectstore.errors import StoreRejected
from minio_manager.provisioning.batching import GroupJoinBatcher


async def test_gate_admits_in_arrival_order_and_bounds_holders() -> None:
    gate = FairGate(2, wait_seconds=30, what="things")
    order: list[int] = []
    release = asyncio.Event()
    peak = 0

    async def worker(i: int) -> None:
        nonlocal peak
        async with gate.slot():
            order.append(i)
            peak = max(peak, gate.active)
            await release.wait()

    tasks = []
    for i in range(6):
        tasks.append(asyncio.create_task(worker(i)))
        await asyncio.sleep(0)  # arrival order is creation order
    await asyncio.sleep(0)
    assert order == [0, 1] and gate.waiting == 4
    release.set()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4, 5]
    assert peak == 2 and gate.active == 0 and gate.waiting == 0


async def test_gate_wait_that_runs_out_is_busy_and_leaks_nothing() -> None:
    gate = FairGate(1, wait_seconds=0.05, what="things")
    hold = asyncio.Event()

    async def holder() -> None:
        async with gate.slot():
            await hold.wait()

    task = asyncio.create_task(holder())
    await asyncio.sleep(0)
    with pytest.raises(ServiceBusy) as caught:
        async with gate.slot():
            pass
    assert caught.value.status == 429
    hold.set()
    await task
    assert gate.active == 0 and gate.waiting == 0
    async with gate.slot():
        assert gate.active == 1


async def test_cancelled_waiter_passes_its_turn_on() -> None:
    gate = FairGate(1, wait_seconds=30, what="things")
    hold = asyncio.Event()
    got: list[str] = []

    async def holder() -> None:
        async with gate.slot():
            await hold.wait()

    async def waiter(name: str) -> None:
        async with gate.slot():
            got.append(name)

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    doomed = asyncio.create_task(waiter("doomed"))
    later = asyncio.create_task(waiter("later"))
    await asyncio.sleep(0)
    doomed.cancel()
    hold.set()
    await first
    await later
    assert got == ["later"] and gate.active == 0


class FakeStore:
    def __init__(self, refuse: set[str] | None = None) -> None:
        self.calls: list[list[str]] = []
        self.refuse = refuse or set()
        self.gate = asyncio.Event()

    async def add_group_members(self, group: str, members: Sequence[str]) -> None:
        self.calls.append(list(members))
        await self.gate.wait()
        if self.refuse & set(members):
            raise StoreRejected(400, "XMinioAdminNoSuchUser", "no such user")


async def test_joins_arriving_during_a_call_share_the_next_one() -> None:
    store = FakeStore()
    batcher = GroupJoinBatcher(store)  # type: ignore[arg-type]
    first = asyncio.create_task(batcher.join("globalusers", "u0"))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(batcher.join("globalusers", f"u{i}")) for i in range(1, 6)]
    await asyncio.sleep(0)
    store.gate.set()
    await asyncio.gather(first, *rest)
    assert store.calls == [["u0"], ["u1", "u2", "u3", "u4", "u5"]]


async def test_one_refused_member_does_not_fail_the_batch() -> None:
    store = FakeStore(refuse={"gone"})
    batcher = GroupJoinBatcher(store)  # type: ignore[arg-type]
    first = asyncio.create_task(batcher.join("g", "a"))
    await asyncio.sleep(0)
    joins: list[Any] = [asyncio.create_task(batcher.join("g", n)) for n in ("b", "gone", "c")]
    store.gate.set()
    await first
    results = await asyncio.gather(*joins, return_exceptions=True)
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], StoreRejected)
