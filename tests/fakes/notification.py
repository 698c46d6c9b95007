"""An in-memory `NotificationService`: the module's own service on its in-memory repository.

The notification module's behaviour (one record per order and type, claims, a sender's failures)
lives in `LocalNotificationService`; a hand-written copy would drift from it. So the fake is that
service on `InMemoryNotificationRepository`, with what a test of the order sagas needs around it:
outages on demand, the journal of effects, and the notifications as last returned.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ecommerce_saga.modules.notification.contract import (
    CancelNotification,
    Notification,
    NotificationFilter,
    NotificationStatus,
    NotificationType,
    SendNotification,
)
from ecommerce_saga.modules.notification.repository import InMemoryNotificationRepository
from ecommerce_saga.modules.notification.sender import NotificationSender
from ecommerce_saga.modules.notification.service import LocalNotificationService
from ecommerce_saga.shared.contracts import Page
from tests.fakes.support import Journal, Outage


class AcceptingSender:
    """A `NotificationSender` whose channel accepts everything."""

    def screen(self, notification: Notification) -> None:
        """Nothing is refused."""

    async def send(self, notification: Notification) -> str:
        """Accept `notification`."""
        return "250 accepted"


class FakeNotificationService:
    """`NotificationService` in memory: by default every notification counts as sent.

    `make_unavailable` makes `send` and `cancel` raise `ServiceUnavailableError` before anything
    is recorded. Each notification that becomes SENT is journalled once, as
    `notification.<TYPE>`. `sender` replaces the channel (one that fails, say).
    """

    def __init__(self, journal: Journal | None = None, sender: NotificationSender | None = None) -> None:
        self.journal = journal if journal is not None else Journal()
        self.repository = InMemoryNotificationRepository()
        self.notifications: dict[tuple[str, NotificationType], Notification] = {}
        """Each order's notification of each type as last returned, in the order first recorded."""
        self._service = LocalNotificationService(self.repository, sender or AcceptingSender())
        self._outage = Outage("notification")

    def make_unavailable(self, times: int | None = None) -> None:
        """Fail the next `times` sends and cancels (every one when None)."""
        self._outage.begin(times)

    def make_available(self) -> None:
        """Answer again."""
        self._outage.end()

    def sent_to(self, order_id: str) -> list[NotificationType]:
        """The types of notification sent about `order_id`, in the order recorded."""
        return [
            n.type
            for (order, _), n in self.notifications.items()
            if order == order_id and n.status is NotificationStatus.SENT
        ]

    def _seen(self, notification: Notification) -> Notification:
        key = (notification.order_id, notification.type)
        before = self.notifications.get(key)
        if notification.status is NotificationStatus.SENT and (
            before is None or before.status is not NotificationStatus.SENT
        ):
            self.journal.record(notification.order_id, f"notification.{notification.type.value}")
        self.notifications[key] = notification
        return notification

    async def send(self, command: SendNotification) -> Notification:
        """See `NotificationService.send`."""
        self._outage.check()
        return self._seen(await self._service.send(command))

    async def cancel(self, command: CancelNotification) -> Notification:
        """See `NotificationService.cancel`."""
        self._outage.check()
        return self._seen(await self._service.cancel(command))

    async def mark_read(self, notification_id: str) -> Notification:
        """See `NotificationService.mark_read`."""
        return self._seen(await self._service.mark_read(notification_id))

    async def get_notification(self, notification_id: str) -> Notification:
        """See `NotificationService.get_notification`."""
        return await self._service.get_notification(notification_id)

    async def list_notifications(self, query: NotificationFilter) -> Page[Notification]:
        """See `NotificationService.list_notifications`."""
        return await self._service.list_notifications(query)


if TYPE_CHECKING:
    from ecommerce_saga.modules.notification.contract import NotificationService

    _conforms: NotificationService = FakeNotificationService()
