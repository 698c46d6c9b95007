"""One `NotificationRepository` spec, run against every repository: in memory and MongoDB (Beanie)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from beanie import init_beanie
from pymongo.asynchronous.database import AsyncDatabase

from ecommerce_saga.modules.notification.contract import (
    NotificationFilter,
    NotificationStatus,
    NotificationType,
    OrderFacts,
    OrderLineFacts,
    ReadStatus,
)
from ecommerce_saga.modules.notification.documents import DOCUMENT_MODELS, NotificationDocument
from ecommerce_saga.modules.notification.repository import (
    BeanieNotificationRepository,
    Claim,
    InMemoryNotificationRepository,
    NotificationRecord,
    NotificationRepository,
)

AT = datetime(2030, 3, 1, 12, 30, 15, 123000, tzinfo=UTC)  # millisecond precision, as MongoDB keeps
NOW_MS = int(AT.timestamp() * 1000)
CONFIRMED, FAILED = NotificationType.ORDER_CONFIRMED, NotificationType.ORDER_FAILED


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def a_notification(order_id: str | None = None, **fields: Any) -> NotificationRecord:
    values: dict[str, Any] = {
        "notification_id": _id("ntf"), "order_id": order_id or _id("ord"), "customer_id": "cus_ada",
        "type": CONFIRMED, "channel": "email", "status": NotificationStatus.PENDING,
        "subject": "Your order", "message": "Thank you", "created_at": AT,
        "claimed_until_ms": NOW_MS + 30_000, "claim_key": "k", "claim_attempt": 1,
    }  # fmt: skip
    return NotificationRecord(**{**values, **fields})


def a_claim(key: str = "k", attempt: int = 1, now_ms: int = NOW_MS) -> Claim:
    return Claim(now_ms=now_ms, until_ms=now_ms + 30_000, key=key, attempt=attempt)


class NotificationRepositorySpec:
    """What every `NotificationRepository` must do; subclasses provide the `repository` fixture."""

    async def test_reads_back_every_field_when_added(self, repository: NotificationRepository) -> None:
        facts = OrderFacts(
            customer_name="Ada", items=[OrderLineFacts(name="Desk", quantity=1, line_total_cents=25_000)],
            total_cents=25_000, currency="GBP", estimated_delivery=date(2030, 3, 5),
        )  # fmt: skip
        record = a_notification(
            details={"total_cents": 25_000, "reason": "x"}, recipient="ada@example.com", order=facts,
            idempotency_key="o:confirmed", message_id="<m@shop>", sent_at=AT, read=True,
            status=NotificationStatus.SENT, delivery_reply="250 ok", last_error="earlier", version=3,
        )  # fmt: skip

        assert await repository.add(record) == record

        assert await repository.get(record.notification_id) == record
        assert await repository.get(_id("ntf")) is None

    async def test_keeps_the_first_of_an_order_and_type_when_added_twice(
        self, repository: NotificationRepository
    ) -> None:
        first = a_notification()
        await repository.add(first)

        again = await repository.add(a_notification(first.order_id, subject="Other"))
        other_type = await repository.add(a_notification(first.order_id, type=FAILED))

        assert again == first
        assert other_type.type is FAILED and other_type.notification_id != first.notification_id
        assert await repository.get(other_type.notification_id) == other_type

    async def test_keeps_one_when_added_concurrently(self, repository: NotificationRepository) -> None:
        order_id = _id("ord")

        added = await asyncio.gather(*(repository.add(a_notification(order_id)) for _ in range(5)))

        assert len({a.notification_id for a in added}) == 1
        assert await repository.get(added[0].notification_id) == added[0]

    async def test_claims_only_when_the_claim_expired(self, repository: NotificationRepository) -> None:
        record = await repository.add(a_notification())  # claimed until NOW_MS + 30 s under "k"

        held = await repository.claim(record.notification_id, a_claim("other", now_ms=NOW_MS + 29_000))
        taken = await repository.claim(record.notification_id, a_claim("other", now_ms=NOW_MS + 31_000))

        assert (held, taken) == (False, True)
        stored = await repository.get(record.notification_id)
        assert stored is not None
        assert (stored.claim_key, stored.claim_attempt, stored.claimed_until_ms, stored.version) == (
            "other", 1, NOW_MS + 61_000, 1,
        )  # fmt: skip

    async def test_a_later_attempt_of_the_same_key_takes_the_claim_over(
        self, repository: NotificationRepository
    ) -> None:
        record = await repository.add(a_notification(claim_attempt=2))

        assert not await repository.claim(record.notification_id, a_claim("k", attempt=2))
        assert not await repository.claim(record.notification_id, a_claim("k", attempt=1))
        assert not await repository.claim(record.notification_id, a_claim("someone", attempt=9))
        assert await repository.claim(record.notification_id, a_claim("k", attempt=3))
        stored = await repository.get(record.notification_id)
        assert stored is not None and (stored.claim_attempt, stored.version) == (3, 1)

    async def test_claims_nothing_unsent_or_unknown(self, repository: NotificationRepository) -> None:
        sent = await repository.add(a_notification(status=NotificationStatus.SENT, claimed_until_ms=0))

        assert not await repository.claim(sent.notification_id, a_claim())
        assert not await repository.claim(_id("ntf"), a_claim())
        assert await repository.get(sent.notification_id) == sent

    async def test_replaces_only_when_the_version_is_unchanged(
        self, repository: NotificationRepository
    ) -> None:
        stored = await repository.add(a_notification())
        sent = stored.model_copy(update={"status": NotificationStatus.SENT, "sent_at": AT, "version": 1})
        read = stored.model_copy(update={"read": True, "version": 1})

        assert await repository.replace(sent, expected_version=0)
        assert not await repository.replace(read, expected_version=0)
        assert await repository.get(stored.notification_id) == sent

    async def test_a_claim_makes_an_earlier_read_stale(self, repository: NotificationRepository) -> None:
        stored = await repository.add(a_notification(claimed_until_ms=0))
        await repository.claim(stored.notification_id, a_claim())

        assert not await repository.replace(stored.model_copy(update={"version": 1}), expected_version=0)

    async def test_lists_by_customer_type_and_read_flag_newest_first(
        self, repository: NotificationRepository
    ) -> None:
        ada = _id("cus")
        stored = [
            await repository.add(
                a_notification(customer_id=ada, type=kind, read=read, created_at=AT + timedelta(seconds=n))
            )
            for n, (kind, read) in enumerate([(CONFIRMED, False), (FAILED, True), (CONFIRMED, True)])
        ]
        await repository.add(a_notification(customer_id=_id("cus")))

        everything, total = await repository.find(NotificationFilter(customer_id=ada))
        confirmed, _ = await repository.find(NotificationFilter(customer_id=ada, type=CONFIRMED))
        read, _ = await repository.find(NotificationFilter(customer_id=ada, read_status=ReadStatus.READ))
        unread, _ = await repository.find(NotificationFilter(customer_id=ada, read_status=ReadStatus.UNREAD))
        page, paged_total = await repository.find(NotificationFilter(customer_id=ada, limit=2, skip=1))

        assert (everything, total) == ([stored[2], stored[1], stored[0]], 3)
        assert confirmed == [stored[2], stored[0]]
        assert read == [stored[2], stored[1]]
        assert unread == [stored[0]]
        assert (page, paged_total) == ([stored[1], stored[0]], 3)

    async def test_breaks_ties_by_id_descending_when_created_at_once(
        self, repository: NotificationRepository
    ) -> None:
        ada = _id("cus")
        for suffix in ("a", "c", "b"):
            await repository.add(a_notification(customer_id=ada, notification_id=f"ntf_{ada}_{suffix}"))

        found, _ = await repository.find(NotificationFilter(customer_id=ada))

        assert [n.notification_id[-1] for n in found] == ["c", "b", "a"]


class TestInMemoryNotificationRepository(NotificationRepositorySpec):
    @pytest.fixture
    def repository(self) -> NotificationRepository:
        return InMemoryNotificationRepository()


class TestBeanieNotificationRepository(NotificationRepositorySpec):
    @pytest.fixture
    async def repository(self, mongo_db: AsyncDatabase[dict[str, Any]]) -> NotificationRepository:
        await init_beanie(database=mongo_db, document_models=DOCUMENT_MODELS)
        return BeanieNotificationRepository()

    async def test_stores_a_notification_as_its_beanie_document_would(
        self, repository: NotificationRepository
    ) -> None:
        # The order path writes with PyMongo (`stored_fields`), not Beanie's encoder: the same document.
        facts = OrderFacts(
            customer_name="Ada", items=[OrderLineFacts(name="Desk", quantity=1, line_total_cents=25_000)],
            total_cents=25_000, currency="GBP", estimated_delivery=date(2030, 3, 5), failure_reason="X_Y",
        )  # fmt: skip
        record = a_notification(
            details={"total_cents": 25_000, "reason": "x"}, recipient="ada@example.com", order=facts
        )
        notifications = NotificationDocument.get_pymongo_collection()
        sent = record.model_copy(update={"status": NotificationStatus.SENT, "sent_at": AT, "version": 1})

        await repository.add(record)
        added = await notifications.find_one({"_id": record.notification_id})
        assert await repository.replace(sent, expected_version=0)
        replaced = await notifications.find_one({"_id": record.notification_id})

        assert added == await _as_beanie_stores(record)
        assert replaced == await _as_beanie_stores(sent)


async def _as_beanie_stores(record: NotificationRecord) -> dict[str, Any] | None:
    """`record` as Beanie's own insert stores it (in place of the stored one, which it deletes)."""
    notifications = NotificationDocument.get_pymongo_collection()
    await notifications.delete_one({"_id": record.notification_id})
    fields = record.model_dump(exclude={"notification_id"})
    await NotificationDocument(id=record.notification_id, **fields).insert()
    return await notifications.find_one({"_id": record.notification_id})
