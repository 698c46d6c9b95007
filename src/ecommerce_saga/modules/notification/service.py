"""The notification module's local implementation: a stored record per order and type, then send.

A notification is first recorded (PENDING) under a unique (order id, type) key, then claimed for
a short lease (so that concurrent calls send it once), handed to the sender, and marked SENT with
the channel's reply only once the channel accepted it. If the sender fails in a way that may pass,
the record stays PENDING (with `last_error`) and the call raises a retryable error; the saga engine
retries, and the retry sends the same record again. If the channel refuses it for good, the record
is FAILED with the reply and the call returns it: a refused email never fails an order. A
notification the sender screens out before any attempt (an email without an address) is recorded
FAILED with that reply in the one insert, and never claimed.

A call that finds the record claimed by another raises the same retryable error, unless it is a
later attempt under the claim's own idempotency key: a saga retries a step only once the earlier
attempt is over (failed, timed out, or its worker died), so the later attempt takes the claim over
at once rather than waiting for it to expire.

Delivery is at-least-once: a send that was cut short after the channel accepted it, but before
SENT was stored, is sent again — the one window for a duplicate, which carries the same
`Message-ID` (derived from the idempotency key that recorded the notification), so that mail
systems can drop it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from ecommerce_saga.modules.notification.contract import (
    CancelNotification,
    Notification,
    NotificationDeliveryError,
    NotificationFilter,
    NotificationNotFoundError,
    NotificationStatus,
    NotificationType,
    SendNotification,
)
from ecommerce_saga.modules.notification.mail import message_id
from ecommerce_saga.modules.notification.repository import Claim, NotificationRecord, NotificationRepository
from ecommerce_saga.modules.notification.sender import DeliveryRefusedError, LoggingSender, NotificationSender
from ecommerce_saga.shared.clock import utcnow
from ecommerce_saga.shared.contracts import Page
from ecommerce_saga.shared.ids import new_id

logger = logging.getLogger(__name__)

DEFAULT_CHANNEL = "email"
_WRITE_ATTEMPTS = 10  # only a send and a mark_read ever race for one record
_FINAL = (NotificationStatus.SENT, NotificationStatus.FAILED)

_DEFAULT_TEXTS: dict[NotificationType, tuple[str, str]] = {
    NotificationType.ORDER_CONFIRMED: (
        "Your order {order_id} is confirmed",
        "Thank you! We have received your order {order_id} and will let you know when it ships.",
    ),
    NotificationType.ORDER_FAILED: (
        "We could not complete your order {order_id}",
        "Sorry, we could not complete your order {order_id}. Any payment taken has been refunded.",
    ),
    NotificationType.ORDER_CANCELLED: (
        "Your order {order_id} was cancelled",
        "Your order {order_id} was cancelled. Any payment taken has been refunded.",
    ),
}


def default_text(notification_type: NotificationType, order_id: str) -> tuple[str, str]:
    """The standard subject and message of a notification of `notification_type`."""
    subject, message = _DEFAULT_TEXTS[notification_type]
    return subject.format(order_id=order_id), message.format(order_id=order_id)


def _epoch_ms(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)


def _outcome(
    status: NotificationStatus, reply: str | None, sent_at: datetime | None = None
) -> Callable[[NotificationRecord], bool]:
    """A change storing how an attempt ended, and dropping the claim."""

    def change(doc: NotificationRecord) -> bool:
        doc.status, doc.claimed_until_ms = status, 0
        if status is NotificationStatus.PENDING:
            doc.last_error = reply
        else:
            doc.delivery_reply, doc.sent_at = reply, sent_at
        return True

    return change


def _mark_read(doc: NotificationRecord) -> bool:
    if doc.read:
        return False
    doc.read = True
    return True


def _notification(doc: NotificationRecord) -> Notification:
    return Notification(
        notification_id=doc.notification_id,
        order_id=doc.order_id,
        customer_id=doc.customer_id,
        type=doc.type,
        channel=doc.channel,
        status=doc.status,
        read=doc.read,
        subject=doc.subject,
        message=doc.message,
        details=doc.details,
        created_at=doc.created_at,
        sent_at=doc.sent_at,
        recipient=doc.recipient,
        order=doc.order,
        message_id=doc.message_id,
        delivery_reply=doc.delivery_reply,
        last_error=doc.last_error,
    )


def _refused(doc: NotificationRecord, level: int = logging.WARNING) -> None:
    logger.log(
        level,
        "notification refused for good",
        extra={
            "notification_id": doc.notification_id,
            "order_id": doc.order_id,
            "notification_type": doc.type,
        },
    )


class LocalNotificationService:
    """`NotificationService` on a `NotificationRepository`, delivering through a `NotificationSender`."""

    def __init__(
        self,
        records: NotificationRepository,
        sender: NotificationSender | None = None,
        *,
        channel: str = DEFAULT_CHANNEL,
        clock: Callable[[], datetime] = utcnow,
        send_timeout_seconds: float = 30.0,
        message_domain: str = "localhost",
    ) -> None:
        self._records = records
        self._sender: NotificationSender = sender if sender is not None else LoggingSender()
        self._channel = channel
        self._clock = clock
        self._send_timeout = send_timeout_seconds
        self._message_domain = message_domain

    def _now(self) -> datetime:
        """The clock's time at MongoDB's millisecond precision, so a re-read compares equal."""
        now = self._clock()
        return now.replace(microsecond=now.microsecond // 1000 * 1000)

    async def send(self, command: SendNotification) -> Notification:
        """See `NotificationService.send`."""
        doc, claimed = await self._record_for(command)
        if doc.status in _FINAL:
            return _notification(doc)
        if not claimed:
            if not await self._claim(doc.notification_id, command):
                doc = await self._get(doc.notification_id)
                if doc.status in _FINAL:
                    return _notification(doc)
                msg = (
                    f"the {doc.type.value} notification of order {doc.order_id} is being sent by another call"
                )
                raise NotificationDeliveryError(msg)
            doc = await self._get(doc.notification_id)
        return _notification(await self._deliver(doc))

    async def cancel(self, command: CancelNotification) -> Notification:
        """See `NotificationService.cancel`."""
        message = None
        if command.reason is not None:
            _, standard = default_text(NotificationType.ORDER_CANCELLED, command.order_id)
            message = f"{standard} Reason: {command.reason}"
        return await self.send(
            SendNotification(
                order_id=command.order_id,
                customer_id=command.customer_id,
                type=NotificationType.ORDER_CANCELLED,
                idempotency_key=command.idempotency_key,
                attempt=command.attempt,
                message=message,
                details={"reason": command.reason} if command.reason is not None else {},
                recipient=command.recipient,
                order=command.order,
            )
        )

    async def _record_for(self, command: SendNotification) -> tuple[NotificationRecord, bool]:
        """The (order, type) record, and whether this call inserted it (and so holds its claim)."""
        subject, message = default_text(command.type, command.order_id)
        doc = NotificationRecord(
            notification_id=new_id("ntf"), order_id=command.order_id, customer_id=command.customer_id,
            type=command.type, channel=self._channel, status=NotificationStatus.PENDING,
            subject=command.subject or subject, message=command.message or message,
            details=dict(command.details), created_at=self._now(),
            claimed_until_ms=_epoch_ms(self._clock()) + int(self._send_timeout * 1000),
            claim_key=command.idempotency_key, claim_attempt=command.attempt,
            recipient=command.recipient, order=command.order, idempotency_key=command.idempotency_key,
            message_id=message_id(command.idempotency_key, self._message_domain),
        )  # fmt: skip
        refusal = self._sender.screen(_notification(doc))
        if refusal is not None:  # nothing the channel would take: recorded FAILED in one write, unclaimed
            doc.status, doc.delivery_reply, doc.claimed_until_ms = NotificationStatus.FAILED, refusal, 0
        stored = await self._records.add(doc)  # add first: a repeated send finds the record in the way
        inserted = stored.notification_id == doc.notification_id
        if inserted and refusal is not None:  # the channel's own rule (no address, say): not alarming
            _refused(doc, logging.INFO)
        return stored, inserted

    async def _claim(self, notification_id: str, command: SendNotification) -> bool:
        """Take the unsent record for as long as a send may take; False if another call holds it.

        The claim is free when it expired, or when it is held by an earlier attempt under the same
        idempotency key (an attempt that is over, as its caller retried).
        """
        now_ms = _epoch_ms(self._clock())
        claim = Claim(
            now_ms=now_ms, until_ms=now_ms + int(self._send_timeout * 1000),
            key=command.idempotency_key, attempt=command.attempt,
        )  # fmt: skip
        return await self._records.claim(notification_id, claim)

    async def _deliver(self, doc: NotificationRecord) -> NotificationRecord:
        """Send the claimed record, then store the outcome and drop the claim."""
        notification_id = doc.notification_id
        try:
            reply = await asyncio.wait_for(self._sender.send(_notification(doc)), self._send_timeout)
        except DeliveryRefusedError as exc:  # for good: recorded, not raised (the order goes on)
            _refused(doc)
            return await self._update(
                notification_id, _outcome(NotificationStatus.FAILED, exc.reply), known=doc
            )
        except Exception as exc:
            error = str(exc)[:500] or type(exc).__name__
            await self._update(notification_id, _outcome(NotificationStatus.PENDING, error), known=doc)
            logger.warning(  # the error's text may name the recipient: only its type is logged
                "notification not delivered",
                extra={
                    "notification_id": notification_id,
                    "order_id": doc.order_id,
                    "error": type(exc).__name__,
                },
            )
            msg = f"the {doc.type.value} notification of order {doc.order_id} was not delivered"
            raise NotificationDeliveryError(msg) from exc
        success = _outcome(NotificationStatus.SENT, reply, sent_at=self._now())
        return await self._update(notification_id, success, known=doc)

    async def _update(
        self,
        notification_id: str,
        change: Callable[[NotificationRecord], bool],
        known: NotificationRecord | None = None,
    ) -> NotificationRecord:
        """Apply `change` to the stored record and replace it whole, again if it changed meanwhile.

        `change` returns False when there is nothing to write. The replace is filtered on the
        version read, so a send and a `mark_read` at the same time never undo each other.
        """
        for _ in range(_WRITE_ATTEMPTS):
            doc = known if known is not None else await self._get(notification_id)
            known = None  # a second pass reads what the concurrent writer stored
            if not change(doc):
                return doc
            expected, doc.version = doc.version, doc.version + 1
            if await self._records.replace(doc, expected):
                return doc
        msg = f"notification {notification_id} kept changing while it was being written"
        raise RuntimeError(msg)

    async def mark_read(self, notification_id: str) -> Notification:
        """See `NotificationService.mark_read`."""
        return _notification(await self._update(notification_id, _mark_read))

    async def get_notification(self, notification_id: str) -> Notification:
        """See `NotificationService.get_notification`."""
        return _notification(await self._get(notification_id))

    async def _get(self, notification_id: str) -> NotificationRecord:
        doc = await self._records.get(notification_id)
        if doc is None:
            raise NotificationNotFoundError(f"no notification {notification_id!r}")
        return doc

    async def list_notifications(self, query: NotificationFilter) -> Page[Notification]:
        """See `NotificationService.list_notifications`."""
        docs, total = await self._records.find(query)
        items = [_notification(d) for d in docs]
        return Page(items=items, total=total, limit=query.limit, skip=query.skip)
