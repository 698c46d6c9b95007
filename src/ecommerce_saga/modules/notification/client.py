"""The notification module over HTTP: `NotificationService` implemented by calling its endpoints."""

from __future__ import annotations

from ecommerce_saga.modules.notification.contract import (
    CancelNotification,
    Notification,
    NotificationFilter,
    SendNotification,
)
from ecommerce_saga.shared.contracts import Page
from ecommerce_saga.web.service_client import ServiceClient


class HttpNotificationService:
    """`NotificationService` on a remote notification service."""

    def __init__(self, client: ServiceClient) -> None:
        self._client = client

    async def send(self, command: SendNotification) -> Notification:
        """See `NotificationService.send`."""
        return await self._client.call("POST", "/api/notifications/send", Notification, json=command)

    async def cancel(self, command: CancelNotification) -> Notification:
        """See `NotificationService.cancel`."""
        return await self._client.call("POST", "/api/notifications/cancel", Notification, json=command)

    async def mark_read(self, notification_id: str) -> Notification:
        """See `NotificationService.mark_read`."""
        return await self._client.call("POST", f"/api/notifications/{notification_id}/read", Notification)

    async def get_notification(self, notification_id: str) -> Notification:
        """See `NotificationService.get_notification`."""
        return await self._client.call("GET", f"/api/notifications/{notification_id}", Notification)

    async def list_notifications(self, query: NotificationFilter) -> Page[Notification]:
        """See `NotificationService.list_notifications`."""
        params = query.model_dump(mode="json", exclude_none=True)
        return await self._client.call("GET", "/api/notifications", Page[Notification], params=params)
