"""How notifications leave the shop: the sender port, its two failure kinds, and a sender that logs.

A sender first screens a notification: a channel that cannot take it at all (an email without an
address) says so without trying, and the notification is recorded as FAILED at once. A sender then
says how a delivery ended. It returns what the channel answered when it accepted the message; it
raises `DeliveryRefusedError` when the channel refused it for good (the notification becomes
FAILED and is never sent again), and anything else for a failure that may pass (the notification
stays PENDING, and the saga's retry sends it again).
"""

from __future__ import annotations

import logging
from typing import Protocol

from ecommerce_saga.modules.notification.contract import Notification

logger = logging.getLogger(__name__)


class NotificationSender(Protocol):
    """Delivers one notification on its channel (a mail server, say)."""

    def screen(self, notification: Notification) -> str | None:
        """The reply refusing `notification` for good before any attempt (it has no address, say),
        or None if it is worth sending. Never does I/O."""
        ...

    async def send(self, notification: Notification) -> str | None:
        """Deliver `notification`; return the channel's answer.

        Raises:
            DeliveryRefusedError: If the channel refused it for good.
            DeliveryDeferredError: Or any other exception, if the delivery may succeed later.
        """
        ...


class DeliveryRefusedError(Exception):
    """The channel refused the message for good (an SMTP 5xx for the recipient, say)."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


class DeliveryDeferredError(Exception):
    """The channel could not take the message now (unreachable, or an SMTP 4xx): try again later."""


class LoggingSender:
    """Stands in for a mail gateway: logs who is told what, never the message's details."""

    def screen(self, notification: Notification) -> None:
        """Nothing is refused: a log needs no address."""

    async def send(self, notification: Notification) -> str:
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
        return "logged"
