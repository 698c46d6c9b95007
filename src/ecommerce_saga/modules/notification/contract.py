"""The notification module's contract: its port, DTOs and errors. Other modules import only this."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Protocol

from pydantic import ConfigDict, Field, StrictInt, StrictStr

from ecommerce_saga.shared.contracts import (
    SAFE_ID_PATTERN,
    FrozenModel,
    NotFoundError,
    Page,
    PageRequest,
    ServiceUnavailableError,
)

OrderId = Annotated[str, Field(pattern=SAFE_ID_PATTERN, examples=["ord_3f2a9c"])]
"""An order's id."""
CustomerId = Annotated[str, Field(pattern=SAFE_ID_PATTERN, examples=["cus_42"])]
"""A customer's id."""
DetailKey = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,39}$")]
"""A detail's name: a plain identifier, so it is safe as a stored field name."""
DetailValue = (
    Annotated[StrictStr, Field(max_length=500)] | Annotated[StrictInt, Field(ge=-(10**15), le=10**15)]
)
"""A detail's value: a short string or a bounded integer (such as an amount in cents)."""


class NotificationType(StrEnum):
    """What a notification tells the customer."""

    ORDER_CONFIRMED = "ORDER_CONFIRMED"
    ORDER_FAILED = "ORDER_FAILED"
    ORDER_CANCELLED = "ORDER_CANCELLED"


class NotificationStatus(StrEnum):
    """Whether a notification went out: PENDING until sent, FAILED after a failed attempt."""

    PENDING = "PENDING"
    SENT = "SENT"
    FAILED = "FAILED"


class ReadStatus(StrEnum):
    """Which notifications to list by whether the customer has read them."""

    READ = "read"
    UNREAD = "unread"


class SendNotification(FrozenModel):
    """Notify a customer about an order, at most once per order and type.

    `subject` and `message` default to the type's standard text; `details` travel with the
    notification to the sender (for a mail template, say).
    """

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "order_id": "ord_3f2a9c",
                    "customer_id": "cust-ada",
                    "type": "ORDER_CONFIRMED",
                    "idempotency_key": "ord_3f2a9c:send_confirmation",
                }
            ]
        }
    )

    order_id: OrderId
    customer_id: CustomerId
    type: NotificationType
    idempotency_key: str = Field(min_length=1, max_length=200)
    attempt: int = Field(
        default=1,
        ge=1,
        le=1_000_000,
        description=(
            "The caller's attempt at this send under `idempotency_key`, 1 first. A later attempt "
            "takes over the send an earlier one left unfinished (its caller stopped or gave up), "
            "instead of waiting for that attempt's claim to expire."
        ),
    )
    subject: str | None = Field(default=None, min_length=1, max_length=200)
    message: str | None = Field(default=None, min_length=1, max_length=2000)
    details: dict[DetailKey, DetailValue] = Field(default_factory=dict, max_length=20)


class CancelNotification(FrozenModel):
    """Compensate a confirmation: tell the customer the order was cancelled."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "order_id": "ord_3f2a9c",
                    "customer_id": "cust-ada",
                    "idempotency_key": "ord_3f2a9c:send_confirmation:compensate",
                    "reason": "cancelled by the customer",
                }
            ]
        }
    )

    order_id: OrderId
    customer_id: CustomerId
    idempotency_key: str = Field(min_length=1, max_length=200)
    attempt: int = Field(default=1, ge=1, le=1_000_000, description="As in `SendNotification`.")
    reason: str | None = Field(default=None, min_length=1, max_length=500)


class Notification(FrozenModel):
    """A message to a customer about an order, and whether it went out and was read."""

    notification_id: str
    order_id: str
    customer_id: str
    type: NotificationType
    channel: str
    status: NotificationStatus
    read: bool
    subject: str
    message: str
    details: dict[str, StrictStr | StrictInt] = Field(default_factory=dict)
    created_at: datetime
    sent_at: datetime | None = None


class NotificationFilter(PageRequest):
    """Which notifications to list."""

    customer_id: CustomerId | None = None
    type: NotificationType | None = None
    read_status: ReadStatus | None = None


class NotificationNotFoundError(NotFoundError):
    """No notification with that id."""

    code = "notification.not_found"
    title = "Notification not found"


class NotificationDeliveryError(ServiceUnavailableError):
    """The sender failed; the notification is kept and sent again when the call is retried."""

    code = "notification.delivery_failed"
    title = "Notification delivery failed"
    retryable = True


class NotificationService(Protocol):
    """The notification module's port."""

    async def send(self, command: SendNotification) -> Notification:
        """Send the notification, once per order and type; a repeat returns the first one.

        Raises:
            NotificationDeliveryError: If the sender failed (retryable: a retry sends again).
        """
        ...

    async def cancel(self, command: CancelNotification) -> Notification:
        """Send the order's ORDER_CANCELLED notification, once.

        Raises:
            NotificationDeliveryError: If the sender failed (retryable: a retry sends again).
        """
        ...

    async def mark_read(self, notification_id: str) -> Notification:
        """Mark the notification read; idempotent.

        Raises:
            NotificationNotFoundError: If there is no such notification.
        """
        ...

    async def get_notification(self, notification_id: str) -> Notification:
        """One notification.

        Raises:
            NotificationNotFoundError: If there is no such notification.
        """
        ...

    async def list_notifications(self, query: NotificationFilter) -> Page[Notification]:
        """Notifications by customer, type and read status, newest first."""
        ...
