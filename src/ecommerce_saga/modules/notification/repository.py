"""Notification records: the `NotificationRepository` port, on MongoDB (Beanie) and in memory.

One notification per order and type. A record is written whole (insert, or replace filtered on
its `version`); only a claim changes it in place, by a conditional update of integers and strings.
Both implementations pass `tests/contract/test_notification_repository_contract.py`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, Field
from pymongo.errors import DuplicateKeyError

from ecommerce_saga.db.encoding import stored_fields
from ecommerce_saga.db.inserts import InsertGroup
from ecommerce_saga.db.queries import count
from ecommerce_saga.modules.notification.contract import (
    NotificationFilter,
    NotificationStatus,
    NotificationType,
    OrderFacts,
    ReadStatus,
)
from ecommerce_saga.modules.notification.documents import NotificationDocument


class NotificationRecord(BaseModel):
    """One notification as stored; `version` counts the writes (optimistic concurrency)."""

    notification_id: str
    order_id: str
    customer_id: str
    type: NotificationType
    channel: str
    status: NotificationStatus
    read: bool = False
    subject: str
    message: str
    details: dict[str, str | int] = Field(default_factory=dict)
    created_at: datetime
    sent_at: datetime | None = None
    recipient: str | None = None  # personal data: never logged
    order: OrderFacts | None = None
    idempotency_key: str | None = None
    message_id: str | None = None
    delivery_reply: str | None = None
    last_error: str | None = None
    claimed_until_ms: int = 0
    claim_key: str | None = None
    claim_attempt: int = 0
    version: int = 0


class Claim(BaseModel):
    """Who takes an unsent record, and until when (epoch milliseconds)."""

    now_ms: int
    until_ms: int
    key: str
    attempt: int


class NotificationRepository(Protocol):
    """Where the notification module keeps its notifications."""

    async def add(self, record: NotificationRecord) -> NotificationRecord:
        """Store a new notification, or return its order's of that type stored first (nothing written)."""
        ...

    async def get(self, notification_id: str) -> NotificationRecord | None:
        """The notification, or None."""
        ...

    async def claim(self, notification_id: str, claim: Claim) -> bool:
        """Take the PENDING record for `claim.key` until `claim.until_ms`, counting a write.

        Only if its claim is free: expired before `claim.now_ms`, or held under the same key by an
        earlier attempt. False if it is not PENDING, not free, or unknown.
        """
        ...

    async def replace(self, record: NotificationRecord, expected_version: int) -> bool:
        """Write the record whole if the stored one still has `expected_version`; False if not."""
        ...

    async def find(self, query: NotificationFilter) -> tuple[list[NotificationRecord], int]:
        """A page of notifications matching `query`, newest first (then by id, descending), and
        how many match in all."""
        ...


class BeanieNotificationRepository:
    """`NotificationRepository` on MongoDB (collection `notifications`, unique on order and type)."""

    def __init__(self) -> None:
        self._inserts = InsertGroup()  # concurrent inserts share a command

    async def add(self, record: NotificationRecord) -> NotificationRecord:
        """See `NotificationRepository.add`."""
        try:
            await self._inserts.insert_one(
                NotificationDocument.get_pymongo_collection(),
                stored_fields(record, id_field="notification_id"),
            )
        except DuplicateKeyError:
            first = await NotificationDocument.find_one(
                {"order_id": record.order_id, "type": record.type.value}
            )
            assert first is not None  # noqa: S101 - notifications are never deleted
            return _record(first)
        return record

    async def get(self, notification_id: str) -> NotificationRecord | None:
        """See `NotificationRepository.get`."""
        doc = await NotificationDocument.get(notification_id)
        return None if doc is None else _record(doc)

    async def claim(self, notification_id: str, claim: Claim) -> bool:
        """See `NotificationRepository.claim`."""
        superseded = {"claim_key": claim.key, "claim_attempt": {"$lt": claim.attempt}}
        result = await NotificationDocument.get_pymongo_collection().update_one(
            {
                "_id": notification_id,
                "status": NotificationStatus.PENDING.value,
                "$or": [{"claimed_until_ms": {"$lt": claim.now_ms}}, superseded],
            },
            {
                "$set": {
                    "claimed_until_ms": claim.until_ms,
                    "claim_key": claim.key,
                    "claim_attempt": claim.attempt,
                },
                "$inc": {"version": 1},
            },
        )
        return result.modified_count == 1

    async def replace(self, record: NotificationRecord, expected_version: int) -> bool:
        """See `NotificationRepository.replace`."""
        current = {"_id": record.notification_id, "version": expected_version}
        stored = stored_fields(record, id_field="notification_id")
        result = await NotificationDocument.get_pymongo_collection().replace_one(current, stored)
        return result.matched_count == 1

    async def find(self, query: NotificationFilter) -> tuple[list[NotificationRecord], int]:
        """See `NotificationRepository.find`."""
        criteria: dict[str, Any] = {}
        if query.customer_id is not None:
            criteria["customer_id"] = query.customer_id
        if query.type is not None:
            criteria["type"] = query.type.value
        if query.read_status is not None:
            criteria["read"] = query.read_status is ReadStatus.READ
        total = await count(NotificationDocument, criteria)
        docs = (
            await NotificationDocument.find(criteria)
            .sort("-created_at", "-_id")
            .skip(query.skip)
            .limit(query.limit)
            .to_list()
        )
        return [_record(doc) for doc in docs], total


def _record(doc: NotificationDocument) -> NotificationRecord:
    fields = doc.model_dump(include=set(NotificationRecord.model_fields))
    return NotificationRecord(notification_id=doc.id, **fields)


class InMemoryNotificationRepository:
    """`NotificationRepository` in a dict: for unit tests and a database-free shop. Each method runs
    without awaiting, so it is atomic on the event loop, as the conditional writes are on MongoDB."""

    def __init__(self) -> None:
        self._records: dict[str, NotificationRecord] = {}

    async def add(self, record: NotificationRecord) -> NotificationRecord:
        """See `NotificationRepository.add`."""
        for stored in self._records.values():
            if (stored.order_id, stored.type) == (record.order_id, record.type):
                return stored.model_copy(deep=True)
        if record.notification_id in self._records:
            raise ValueError(f"notification id {record.notification_id} exists")
        self._records[record.notification_id] = record.model_copy(deep=True)
        return record

    async def get(self, notification_id: str) -> NotificationRecord | None:
        """See `NotificationRepository.get`."""
        found = self._records.get(notification_id)
        return None if found is None else found.model_copy(deep=True)

    async def claim(self, notification_id: str, claim: Claim) -> bool:
        """See `NotificationRepository.claim`."""
        record = self._records.get(notification_id)
        if record is None or record.status is not NotificationStatus.PENDING:
            return False
        superseded = record.claim_key == claim.key and record.claim_attempt < claim.attempt
        if not (record.claimed_until_ms < claim.now_ms or superseded):
            return False
        self._records[notification_id] = record.model_copy(
            update={
                "claimed_until_ms": claim.until_ms, "claim_key": claim.key,
                "claim_attempt": claim.attempt, "version": record.version + 1,
            }
        )  # fmt: skip
        return True

    async def replace(self, record: NotificationRecord, expected_version: int) -> bool:
        """See `NotificationRepository.replace`."""
        stored = self._records.get(record.notification_id)
        if stored is None or stored.version != expected_version:
            return False
        self._records[record.notification_id] = record.model_copy(deep=True)
        return True

    async def find(self, query: NotificationFilter) -> tuple[list[NotificationRecord], int]:
        """See `NotificationRepository.find`."""
        read = None if query.read_status is None else query.read_status is ReadStatus.READ
        matching = sorted(
            (
                r
                for r in self._records.values()
                if (query.customer_id is None or r.customer_id == query.customer_id)
                and (query.type is None or r.type is query.type)
                and (read is None or r.read is read)
            ),
            key=lambda r: (r.created_at, r.notification_id),
            reverse=True,
        )
        page = matching[query.skip : query.skip + query.limit]
        return [r.model_copy(deep=True) for r in page], len(matching)
