"""`LocalNotificationService` beyond the contract: claims, crashes, timeouts and racing writes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from ecommerce_saga.modules.notification.contract import (
    Notification,
    NotificationDeliveryError,
    NotificationFilter,
    NotificationStatus,
    NotificationType,
    SendNotification,
)
from ecommerce_saga.modules.notification.repository import InMemoryNotificationRepository
from ecommerce_saga.modules.notification.service import LocalNotificationService


class FakeSender:
    """A `NotificationSender` that records what it delivered, running `during_send` first."""

    def __init__(self) -> None:
        self.delivered: list[Notification] = []
        self.during_send: Callable[[str], Awaitable[object]] | None = None

    def screen(self, notification: Notification) -> None:
        return None

    async def send(self, notification: Notification) -> None:
        if self.during_send is not None:
            await self.during_send(notification.notification_id)
        self.delivered.append(notification)


class CrashingSender:
    """A sender whose worker dies mid-send: nothing after the send is written."""

    def screen(self, notification: Notification) -> None:
        return None

    async def send(self, notification: Notification) -> None:
        raise asyncio.CancelledError


class HangingSender:
    """A sender that never answers."""

    def screen(self, notification: Notification) -> None:
        return None

    async def send(self, notification: Notification) -> None:
        await asyncio.Event().wait()


class ManualClock:
    """A clock that shows `now` until a test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def _send(
    order_id: str, customer_id: str = "cus_ada", attempt: int = 1, key: str = "confirmed"
) -> SendNotification:
    return SendNotification(
        order_id=order_id, customer_id=customer_id, type=NotificationType.ORDER_CONFIRMED,
        idempotency_key=f"{order_id}:{key}", attempt=attempt,
    )  # fmt: skip


async def test_sends_again_when_a_crashed_send_leaves_an_expired_claim() -> None:
    records = InMemoryNotificationRepository()
    clock = ManualClock(datetime(2030, 1, 4, 12, tzinfo=UTC))
    crashing, working = CrashingSender(), FakeSender()
    order_id = _id("ord")

    with pytest.raises(asyncio.CancelledError):
        await LocalNotificationService(records, crashing, clock=clock, send_timeout_seconds=30).send(
            _send(order_id)
        )
    service = LocalNotificationService(records, working, clock=clock, send_timeout_seconds=30)
    clock.now += timedelta(seconds=29)
    with pytest.raises(NotificationDeliveryError, match="being sent by another call"):
        await service.send(_send(order_id))
    clock.now += timedelta(seconds=2)
    sent = await service.send(_send(order_id))

    assert sent.status is NotificationStatus.SENT
    assert [n.notification_id for n in working.delivered] == [sent.notification_id]


async def test_a_later_attempt_takes_over_the_claim_a_crashed_attempt_left() -> None:
    records = InMemoryNotificationRepository()
    clock = ManualClock(datetime(2030, 1, 4, 12, tzinfo=UTC))
    working = FakeSender()
    service = LocalNotificationService(records, working, clock=clock, send_timeout_seconds=30)
    order_id = _id("ord")
    with pytest.raises(asyncio.CancelledError):
        await LocalNotificationService(records, CrashingSender(), clock=clock).send(
            _send(order_id, attempt=1)
        )

    with pytest.raises(NotificationDeliveryError, match="being sent by another call"):
        await service.send(_send(order_id, attempt=1))  # the same attempt again: it may still be sending
    with pytest.raises(NotificationDeliveryError, match="being sent by another call"):
        await service.send(_send(order_id, attempt=5, key="someone-else"))  # another caller waits
    sent = await service.send(_send(order_id, attempt=2))  # its own retry does not wait 30 s
    again = await service.send(_send(order_id, attempt=3))

    assert sent.status is NotificationStatus.SENT
    assert again == sent
    assert [n.notification_id for n in working.delivered] == [sent.notification_id]


async def test_keeps_read_flag_when_read_while_being_sent() -> None:
    records = InMemoryNotificationRepository()
    sender = FakeSender()
    service = LocalNotificationService(records, sender)
    sender.during_send = service.mark_read

    sent = await service.send(_send(_id("ord")))

    assert (sent.status, sent.read) == (NotificationStatus.SENT, True)
    assert await service.get_notification(sent.notification_id) == sent


async def test_keeps_pending_with_the_error_when_sender_times_out() -> None:
    records = InMemoryNotificationRepository()
    service = LocalNotificationService(records, HangingSender(), send_timeout_seconds=0.05)
    customer_id = _id("cus")

    with pytest.raises(NotificationDeliveryError):
        await service.send(_send(_id("ord"), customer_id=customer_id))

    [record] = (await service.list_notifications(NotificationFilter(customer_id=customer_id))).items
    assert record.status is NotificationStatus.PENDING  # may pass: the saga's retry sends it again
    assert record.last_error == "TimeoutError"
    assert record.sent_at is None
