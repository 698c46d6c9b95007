"""The notification contract, run against every `NotificationService`.

`NotificationServiceContract` holds the behaviour; `TestLocalNotificationService` runs it against
the local service on the test database, `TestLocalNotificationServiceInMemory` against the local
service on its in-memory repository, `TestHttpNotificationService` against
`HttpNotificationService` talking to the local service's router in-process (see
`tests/contract/http_adapter.py`), and `TestFakeNotificationService` against the fake the order
module's unit tests use. All record deliveries with the same `FakeSender`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import pytest
from beanie import init_beanie
from pymongo.asynchronous.database import AsyncDatabase

from ecommerce_saga.modules.notification.client import HttpNotificationService
from ecommerce_saga.modules.notification.contract import (
    CancelNotification,
    Notification,
    NotificationDeliveryError,
    NotificationFilter,
    NotificationNotFoundError,
    NotificationService,
    NotificationStatus,
    NotificationType,
    OrderFacts,
    OrderLineFacts,
    ReadStatus,
    SendNotification,
)
from ecommerce_saga.modules.notification.documents import DOCUMENT_MODELS
from ecommerce_saga.modules.notification.repository import (
    BeanieNotificationRepository,
    InMemoryNotificationRepository,
)
from ecommerce_saga.modules.notification.router import build_router
from ecommerce_saga.modules.notification.sender import DeliveryRefusedError
from ecommerce_saga.modules.notification.service import LocalNotificationService, default_text
from tests.contract.http_adapter import TOKENS, served_over_http
from tests.fakes.notification import FakeNotificationService


class FakeSender:
    """A `NotificationSender` that records what it sent and fails the first `failures` calls."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.refusal: str | None = None
        self.screened_out: str | None = None
        self.calls: list[Notification] = []
        self.delivered: list[Notification] = []

    def screen(self, notification: Notification) -> str | None:
        return self.screened_out

    async def send(self, notification: Notification) -> str:
        self.calls.append(notification)
        if self.refusal is not None:
            raise DeliveryRefusedError(self.refusal)
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("the mail gateway is down")
        self.delivered.append(notification)
        return "250 accepted"


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def _send(
    order_id: str,
    notification_type: NotificationType = NotificationType.ORDER_CONFIRMED,
    customer_id: str = "cus_ada",
    **changes: Any,
) -> SendNotification:
    return SendNotification(
        order_id=order_id, customer_id=customer_id, type=notification_type,
        idempotency_key=f"{order_id}:{notification_type.value}", **changes,
    )  # fmt: skip


async def _open_connections(service: NotificationService) -> None:
    """Read in parallel first, so that the calls under test overlap instead of queueing for connections."""
    await asyncio.gather(*(service.list_notifications(NotificationFilter()) for _ in range(10)))


class NotificationServiceContract:
    """What every `NotificationService` does. Subclasses provide `service` and `sender`."""

    async def test_sends_with_default_text_when_no_text_is_given(
        self, service: NotificationService, sender: FakeSender
    ) -> None:
        order_id = _id("ord")

        sent = await service.send(_send(order_id, details={"total_cents": 1999}))

        assert sent.status is NotificationStatus.SENT
        assert sent.sent_at is not None
        assert sent.read is False
        assert sent.channel == "email"
        assert (sent.subject, sent.message) == default_text(NotificationType.ORDER_CONFIRMED, order_id)
        assert sent.details == {"total_cents": 1999}
        assert [n.notification_id for n in sender.delivered] == [sent.notification_id]
        assert await service.get_notification(sent.notification_id) == sent

    async def test_uses_given_text_when_subject_and_message_are_given(
        self, service: NotificationService
    ) -> None:
        sent = await service.send(_send(_id("ord"), subject="Hello", message="Your parcel ..."))

        assert (sent.subject, sent.message) == ("Hello", "Your parcel ...")

    async def test_sends_once_when_same_order_and_type_is_sent_again(
        self, service: NotificationService, sender: FakeSender
    ) -> None:
        order_id = _id("ord")
        first = await service.send(_send(order_id))

        again = await service.send(_send(order_id, subject="Different"))

        assert again == first
        assert len(sender.delivered) == 1

    async def test_sends_once_when_sent_concurrently(
        self, service: NotificationService, sender: FakeSender
    ) -> None:
        order_id = _id("ord")
        await _open_connections(service)

        outcomes = await asyncio.gather(
            *(service.send(_send(order_id)) for _ in range(5)), return_exceptions=True
        )
        settled = await service.send(_send(order_id))

        returned = [o for o in outcomes if isinstance(o, Notification)]
        busy = [o for o in outcomes if not isinstance(o, Notification)]
        assert all(isinstance(o, NotificationDeliveryError) and o.retryable for o in busy)
        assert {n.notification_id for n in returned} <= {settled.notification_id}
        assert settled.status is NotificationStatus.SENT
        assert [n.notification_id for n in sender.delivered] == [settled.notification_id]

    async def test_sends_each_type_when_types_differ(
        self, service: NotificationService, sender: FakeSender
    ) -> None:
        order_id = _id("ord")

        confirmed = await service.send(_send(order_id))
        failed = await service.send(_send(order_id, NotificationType.ORDER_FAILED))

        assert confirmed.notification_id != failed.notification_id
        assert [n.type for n in sender.delivered] == [
            NotificationType.ORDER_CONFIRMED,
            NotificationType.ORDER_FAILED,
        ]

    async def test_raises_retryable_error_then_sends_once_when_sender_fails_once(
        self, service: NotificationService, sender: FakeSender
    ) -> None:
        order_id, customer_id = _id("ord"), _id("cus")
        sender.failures = 1

        with pytest.raises(NotificationDeliveryError) as caught:
            await service.send(_send(order_id, customer_id=customer_id))
        retried = await service.send(_send(order_id, customer_id=customer_id))

        assert caught.value.retryable is True
        assert caught.value.code == "notification.delivery_failed"
        assert caught.value.status == 503
        assert retried.status is NotificationStatus.SENT
        assert len(sender.calls) == 2
        stored = await service.list_notifications(NotificationFilter(customer_id=customer_id))
        assert [(n.notification_id, n.status) for n in stored.items] == [
            (retried.notification_id, NotificationStatus.SENT)
        ]

    async def test_keeps_record_unsent_when_sender_fails(
        self, service: NotificationService, sender: FakeSender
    ) -> None:
        customer_id = _id("cus")
        sender.failures = 1

        with pytest.raises(NotificationDeliveryError):
            await service.send(_send(_id("ord"), customer_id=customer_id))

        [record] = (await service.list_notifications(NotificationFilter(customer_id=customer_id))).items
        assert record.status is not NotificationStatus.SENT
        assert record.sent_at is None

    async def test_sends_cancellation_when_confirmation_is_compensated(
        self, service: NotificationService, sender: FakeSender
    ) -> None:
        order_id = _id("ord")
        await service.send(_send(order_id))
        command = CancelNotification(
            order_id=order_id, customer_id="cus_ada", idempotency_key="k", reason="out of stock"
        )

        cancelled = await service.cancel(command)
        again = await service.cancel(command)

        assert cancelled.type is NotificationType.ORDER_CANCELLED
        assert cancelled.status is NotificationStatus.SENT
        assert "out of stock" in cancelled.message
        assert again == cancelled
        assert [n.type for n in sender.delivered] == [
            NotificationType.ORDER_CONFIRMED,
            NotificationType.ORDER_CANCELLED,
        ]

    async def test_marks_read_once_when_marked_twice(self, service: NotificationService) -> None:
        sent = await service.send(_send(_id("ord")))

        read = await service.mark_read(sent.notification_id)
        again = await service.mark_read(sent.notification_id)

        assert read.read is True
        assert again == read
        assert (await service.get_notification(sent.notification_id)).read is True

    async def test_marks_read_when_marked_concurrently(self, service: NotificationService) -> None:
        sent = await service.send(_send(_id("ord")))
        await _open_connections(service)

        marked = await asyncio.gather(*(service.mark_read(sent.notification_id) for _ in range(10)))

        assert {(n.read, n.status) for n in marked} == {(True, NotificationStatus.SENT)}
        assert await service.get_notification(sent.notification_id) == marked[0]

    async def test_raises_not_found_when_notification_is_unknown(self, service: NotificationService) -> None:
        with pytest.raises(NotificationNotFoundError) as caught:
            await service.get_notification(_id("ntf"))
        with pytest.raises(NotificationNotFoundError):
            await service.mark_read(_id("ntf"))

        assert caught.value.code == "notification.not_found"

    async def test_lists_by_customer_type_and_read_status_when_filtered(
        self, service: NotificationService
    ) -> None:
        ada, bob = _id("cus"), _id("cus")
        first, second = _id("ord"), _id("ord")
        confirmed = await service.send(_send(first, customer_id=ada))
        await service.send(_send(first, NotificationType.ORDER_CANCELLED, customer_id=ada))
        await service.send(_send(second, NotificationType.ORDER_FAILED, customer_id=ada))
        await service.send(_send(_id("ord"), customer_id=bob))
        await service.mark_read(confirmed.notification_id)

        def listed(**criteria: Any) -> Any:
            return service.list_notifications(NotificationFilter(customer_id=ada, **criteria))

        everything = await listed()
        cancelled = await listed(type=NotificationType.ORDER_CANCELLED)
        read = await listed(read_status=ReadStatus.READ)
        unread = await listed(read_status=ReadStatus.UNREAD)

        assert everything.total == 3
        assert {n.customer_id for n in everything.items} == {ada}
        assert [(n.order_id, n.type) for n in cancelled.items] == [(first, NotificationType.ORDER_CANCELLED)]
        assert [n.notification_id for n in read.items] == [confirmed.notification_id]
        assert unread.total == 2
        assert confirmed.notification_id not in {n.notification_id for n in unread.items}

    async def test_carries_recipient_and_order_facts_and_the_reply_when_sent(
        self, service: NotificationService, sender: FakeSender
    ) -> None:
        facts = OrderFacts(
            customer_name="Ada", items=[OrderLineFacts(name="Keyboard", quantity=1, line_total_cents=8999)],
            total_cents=8999, currency="GBP", estimated_delivery=date(2030, 1, 8),
        )  # fmt: skip

        sent = await service.send(_send(_id("ord"), recipient="ada@example.com", order=facts))

        assert (sent.recipient, sent.order, sent.delivery_reply) == ("ada@example.com", facts, "250 accepted")
        assert sent.message_id is not None and sent.message_id.startswith("<")
        assert sender.delivered[0].recipient == "ada@example.com" and sender.delivered[0].order == facts

    async def test_returns_failed_with_the_reply_and_never_resends_when_refused_for_good(
        self, service: NotificationService, sender: FakeSender, caplog: pytest.LogCaptureFixture
    ) -> None:
        order_id = _id("ord")
        sender.refusal = "550 5.1.1 no such mailbox"

        with caplog.at_level(logging.INFO, logger="ecommerce_saga.modules.notification.service"):
            failed = await service.send(_send(order_id, recipient="nobody@example.com"))
        again = await service.send(_send(order_id, recipient="nobody@example.com", attempt=2))

        assert (failed.status, failed.delivery_reply, failed.sent_at) == (
            NotificationStatus.FAILED, "550 5.1.1 no such mailbox", None,
        )  # fmt: skip
        assert again == failed
        assert len(sender.calls) == 1
        assert _refusal_levels(caplog) == [logging.WARNING]  # a server refused it: an operator looks

    async def test_records_failed_and_never_tries_when_the_sender_screens_it_out(
        self, service: NotificationService, sender: FakeSender, caplog: pytest.LogCaptureFixture
    ) -> None:
        order_id = _id("ord")
        sender.screened_out = "no email address"

        with caplog.at_level(logging.INFO, logger="ecommerce_saga.modules.notification.service"):
            failed = await service.send(_send(order_id))
        again = await service.send(_send(order_id, attempt=2))

        assert (failed.status, failed.delivery_reply, failed.sent_at) == (
            NotificationStatus.FAILED, "no email address", None,
        )  # fmt: skip
        assert again == failed
        assert await service.get_notification(failed.notification_id) == failed
        assert sender.calls == []
        assert _refusal_levels(caplog) == [logging.INFO]  # the channel's own rule: expected, not alarming

    async def test_pages_newest_first_when_listing(self, service: NotificationService) -> None:
        customer_id = _id("cus")
        for _ in range(5):
            await service.send(_send(_id("ord"), customer_id=customer_id))

        everything = await service.list_notifications(NotificationFilter(customer_id=customer_id))
        first = await service.list_notifications(NotificationFilter(customer_id=customer_id, limit=3))
        rest = await service.list_notifications(NotificationFilter(customer_id=customer_id, limit=3, skip=3))

        created = [n.created_at for n in everything.items]
        assert created == sorted(created, reverse=True)
        assert first.items + rest.items == everything.items
        assert (rest.total, rest.limit, rest.skip, len(rest.items)) == (5, 3, 3, 2)


class TestLocalNotificationService(NotificationServiceContract):
    """The contract against `LocalNotificationService` on the embedded database."""

    @pytest.fixture
    def sender(self) -> FakeSender:
        return FakeSender()

    @pytest.fixture
    async def service(
        self, mongo_db: AsyncDatabase[dict[str, Any]], sender: FakeSender
    ) -> NotificationService:
        await init_beanie(database=mongo_db, document_models=DOCUMENT_MODELS)
        return LocalNotificationService(BeanieNotificationRepository(), sender)


class TestLocalNotificationServiceInMemory(NotificationServiceContract):
    """The contract against `LocalNotificationService` on its in-memory repository (no database)."""

    @pytest.fixture
    def sender(self) -> FakeSender:
        return FakeSender()

    @pytest.fixture
    def service(self, sender: FakeSender) -> NotificationService:
        return LocalNotificationService(InMemoryNotificationRepository(), sender)


class TestFakeNotificationService(NotificationServiceContract):
    """The contract against the fake that stands for the module in the order module's unit tests."""

    @pytest.fixture
    def sender(self) -> FakeSender:
        return FakeSender()

    @pytest.fixture
    def service(self, sender: FakeSender) -> NotificationService:
        return FakeNotificationService(sender=sender)


class TestHttpNotificationService(NotificationServiceContract):
    """The contract against `HttpNotificationService` and the notification router, in-process."""

    @pytest.fixture
    def sender(self) -> FakeSender:
        return FakeSender()

    @pytest.fixture
    async def service(
        self, mongo_db: AsyncDatabase[dict[str, Any]], sender: FakeSender
    ) -> AsyncIterator[NotificationService]:
        await init_beanie(database=mongo_db, document_models=DOCUMENT_MODELS)
        local = LocalNotificationService(BeanieNotificationRepository(), sender)
        async with served_over_http("notification", build_router(local, TOKENS)) as client:
            yield HttpNotificationService(client)


def _refusal_levels(caplog: pytest.LogCaptureFixture) -> list[int]:
    return [r.levelno for r in caplog.records if r.getMessage() == "notification refused for good"]
