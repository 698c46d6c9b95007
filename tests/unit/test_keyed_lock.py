"""`KeyedLock`: one holder per key at a time, different keys at once, nothing kept when idle."""

from __future__ import annotations

import asyncio

from ecommerce_saga.shared.keyed_lock import KeyedLock


async def test_holders_of_one_key_take_turns_in_the_order_they_asked() -> None:
    locks: KeyedLock[str] = KeyedLock()
    inside: list[str] = []
    order: list[str] = []
    first_inside, release_first = asyncio.Event(), asyncio.Event()

    async def hold(name: str, wait: asyncio.Event | None = None) -> None:
        async with locks.holding("o1"):
            inside.append(name)
            assert len(inside) == 1, inside  # never two holders of one key at once
            order.append(name)
            if wait is not None:
                first_inside.set()
                await wait.wait()
            inside.remove(name)

    first = asyncio.create_task(hold("first", release_first))
    await first_inside.wait()
    others = [asyncio.create_task(hold(name)) for name in ("second", "third")]
    await asyncio.sleep(0)  # let them ask for the key
    assert order == ["first"] and len(locks) == 1  # they wait for it
    release_first.set()
    await asyncio.gather(first, *others)

    assert order == ["first", "second", "third"]
    assert len(locks) == 0  # nothing kept once no one holds or waits


async def test_holders_of_different_keys_run_at_once() -> None:
    locks: KeyedLock[str] = KeyedLock()
    both_inside = asyncio.Barrier(2)

    async def hold(key: str) -> None:
        async with locks.holding(key):
            await both_inside.wait()  # would never return if one key's holder blocked the other

    await asyncio.wait_for(asyncio.gather(hold("o1"), hold("o2")), timeout=60)
    assert len(locks) == 0


async def test_a_holder_that_fails_lets_the_next_one_in() -> None:
    locks: KeyedLock[str] = KeyedLock()

    async def fail() -> None:
        async with locks.holding("o1"):
            raise RuntimeError("the call failed")

    results = await asyncio.gather(fail(), fail(), return_exceptions=True)

    assert [type(r) for r in results] == [RuntimeError, RuntimeError]
    async with locks.holding("o1"):
        assert len(locks) == 1
    assert len(locks) == 0
