"""How notifications leave the shop: the sender port and the default sender that logs them."""

from __future__ import annotations

import logging
from typing import Protocol

from ecommerce_saga.modules.notification.contract import Notification

logger = logging.getLogger(__name__)


class NotificationSender(Protocol):
    """Delivers one notification on its channel (a mail gateway, say)."""

    async def send(self, notification: Notification) -> None:
        """Deliver `notification`; raise if it could not be delivered."""
        ...


class LoggingSender:
    """Stands in for a mail gateway: logs who is told what, never the message's details."""

    async def send(self, notification: Notification) -> None:
        """Log a structured record of the notification."""
        logger.info(
            "notification sent",
            extra={
                "notification_id": notification.notification_id,
                "order_id": notification.order_id,
                "customer_id": notification.customer_id,
                "notification_type": notification.type.value,
                "channel": notification.channel,
            },
        )
