"""An in-memory `NotificationService`: at most one notification per order and type."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ecommerce_saga.modules.notification.contract import (
    CancelNotification,
    Notification,
    NotificationFilter,
    NotificationNotFoundError,
    NotificationStatus,
    NotificationType,
    ReadStatus,
    SendNotification,
)
from ecommerce_saga.shared.clock import utcnow
from ecommerce_saga.shared.contracts import Page
from ecommerce_saga.shared.ids import new_id
from tests.fakes.support import Journal, Outage, page_of


class FakeNotificationService:
    """`NotificationService` in memory: every notification it accepts counts as sent.

    `send` and `cancel` are idempotent per order and type; `make_unavailable` makes them raise
    `ServiceUnavailableError` (nothing is recorded then).
    """

    def __init__(self, journal: Journal | None = None) -> None:
        self.journal = journal if journal is not None else Journal()
        self.notifications: dict[tuple[str, NotificationType], Notification] = {}
        self._outage = Outage("notification")

    def make_unavailable(self, times: int | None = None) -> None:
        """Fail the next `times` sends and cancels (every one when None)."""
        self._outage.begin(times)

    def make_available(self) -> None:
        """Answer again."""
        self._outage.end()

    def sent_to(self, order_id: str) -> list[NotificationType]:
        """The types of notification sent about `order_id`, in the order sent."""
        return [n.type for (order, _), n in self.notifications.items() if order == order_id]

    async def send(self, command: SendNotification) -> Notification:
        """See `NotificationService.send`."""
        self._outage.check()
        key = (command.order_id, command.type)
        if key not in self.notifications:
            now = utcnow()
            self.notifications[key] = Notification(
                notification_id=new_id("ntf"), order_id=command.order_id,
                customer_id=command.customer_id, type=command.type, channel="email",
                status=NotificationStatus.SENT, read=False,
                subject=command.subject or f"{command.type.value} {command.order_id}",
                message=command.message or f"{command.type.value}: order {command.order_id}",
                details=dict(command.details), created_at=now, sent_at=now,
            )  # fmt: skip
            self.journal.record(command.order_id, f"notification.{command.type.value}")
        return self.notifications[key]

    async def cancel(self, command: CancelNotification) -> Notification:
        """See `NotificationService.cancel`."""
        reason = command.reason
        return await self.send(
            SendNotification(
                order_id=command.order_id,
                customer_id=command.customer_id,
                type=NotificationType.ORDER_CANCELLED,
                idempotency_key=command.idempotency_key,
                message=f"Order {command.order_id} was cancelled. Reason: {reason}" if reason else None,
                details={"reason": reason} if reason else {},
            )
        )

    async def mark_read(self, notification_id: str) -> Notification:
        """See `NotificationService.mark_read`."""
        for key, notification in self.notifications.items():
            if notification.notification_id == notification_id:
                self.notifications[key] = notification.model_copy(update={"read": True})
                return self.notifications[key]
        raise NotificationNotFoundError(f"no notification {notification_id!r}")

    async def get_notification(self, notification_id: str) -> Notification:
        """See `NotificationService.get_notification`."""
        for notification in self.notifications.values():
            if notification.notification_id == notification_id:
                return notification
        raise NotificationNotFoundError(f"no notification {notification_id!r}")

    async def list_notifications(self, query: NotificationFilter) -> Page[Notification]:
        """See `NotificationService.list_notifications`."""
        matching = [
            n
            for n in reversed(self.notifications.values())
            if (query.customer_id is None or n.customer_id == query.customer_id)
            and (query.type is None or n.type is query.type)
            and (query.read_status is None or n.read == (query.read_status is ReadStatus.READ))
        ]
        return page_of(matching, query)


if TYPE_CHECKING:
    from ecommerce_saga.modules.notification.contract import NotificationService

    _conforms: NotificationService = FakeNotificationService()
