"""Webhook updates of one chat are handled one at a time, in Telegram's order, and one that keeps
failing is kept for staff instead of being redelivered for ever."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from channels.telegram.gate import UpdateGate, chat_of


def update(update_id: int, chat: int) -> dict[str, Any]:
    return {"update_id": update_id, "message": {"message_id": update_id, "chat": {"id": chat}, "text": "x"}}


async def settle(condition: Any) -> None:
    """Let the event loop run the started tasks until `condition()` holds (no clock involved)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the tasks never got there")


async def test_one_chats_waiting_updates_go_in_update_id_order_and_other_chats_do_not_wait() -> None:
    handled: list[int] = []
    release = asyncio.Event()

    async def handle(raw: Mapping[str, Any]) -> None:
        if raw["update_id"] == 1:
            await release.wait()  # the chat's first update is still being committed
        handled.append(raw["update_id"])

    gate = UpdateGate(handle)
    first = asyncio.create_task(gate(update(1, 7)))
    await settle(lambda: 7 in gate._chats)
    # Delivered over two other connections meanwhile, the later one first.
    later = asyncio.create_task(gate(update(3, 7)))
    earlier = asyncio.create_task(gate(update(2, 7)))
    await settle(lambda: len(gate._chats[7].waiting) == 2)
    await gate(update(4, 8))  # another learner is not held up
    assert handled == [4]
    release.set()
    await asyncio.gather(first, later, earlier)
    assert handled == [4, 1, 2, 3]
    assert gate._chats == {}


async def test_a_waiter_cancelled_in_the_queue_does_not_block_the_chat() -> None:
    handled: list[int] = []
    release = asyncio.Event()

    async def handle(raw: Mapping[str, Any]) -> None:
        if raw["update_id"] == 1:
            await release.wait()
        handled.append(raw["update_id"])

    gate = UpdateGate(handle)
    first = asyncio.create_task(gate(update(1, 7)))
    await settle(lambda: 7 in gate._chats)
    dropped = asyncio.create_task(gate(update(2, 7)))
    await settle(lambda: len(gate._chats[7].waiting) == 1)
    dropped.cancel()  # the client went away while waiting: Telegram will deliver it again
    with pytest.raises(asyncio.CancelledError):
        await dropped
    release.set()
    await first
    await gate(update(3, 7))
    assert handled == [1, 3] and gate._chats == {}


async def test_an_update_that_keeps_failing_is_given_up_after_the_limit() -> None:
    kept: list[tuple[int, str]] = []

    async def handle(raw: Mapping[str, Any]) -> None:
        raise RuntimeError("boom")

    async def give_up(raw: Mapping[str, Any], error: Exception) -> None:
        kept.append((raw["update_id"], str(error)))

    gate = UpdateGate(handle, give_up, max_failures=3)
    for _ in range(2):
        with pytest.raises(RuntimeError):
            await gate(update(5, 7))
    await gate(update(5, 7))  # the third try: kept for staff, and done with
    assert kept == [(5, "boom")]


def test_the_chat_of_each_kind_of_update() -> None:
    assert chat_of(update(1, 42)) == 42
    button = {
        "update_id": 2,
        "callback_query": {"id": "q", "from": {"id": 9}, "message": {"chat": {"id": -5}}},
    }
    assert chat_of(button) == -5
    assert chat_of({"update_id": 3, "callback_query": {"id": "q", "from": {"id": 9}}}) == 9
    assert chat_of({"update_id": 4, "poll": {}}) == ("update", 4)
