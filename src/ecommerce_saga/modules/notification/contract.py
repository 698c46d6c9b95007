"""The notification module's contract: its port, DTOs and errors. Other modules import only this."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Protocol

from pydantic import ConfigDict, EmailStr, Field, StrictInt, StrictStr, field_validator

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
EmailAddress = Annotated[EmailStr, Field(max_length=254, examples=["ada@example.com"])]
"""A validated email address (no display name, no line breaks)."""
Cents = Annotated[StrictInt, Field(ge=0, le=10**12)]
"""An amount in minor units."""
_Text = Annotated[str, Field(min_length=1, max_length=200)]


class NotificationType(StrEnum):
    """What a notification tells the customer."""

    ORDER_CONFIRMED = "ORDER_CONFIRMED"
    ORDER_FAILED = "ORDER_FAILED"
    ORDER_CANCELLED = "ORDER_CANCELLED"


class NotificationStatus(StrEnum):
    """Whether a notification went out.

    PENDING until the channel accepted it (a failed attempt that may succeed later keeps it
    PENDING, with `last_error`); SENT once accepted; FAILED when refused for good (a mail server's
    5xx for the recipient, or no address to send to): it is never sent again.
    """

    PENDING = "PENDING"
    SENT = "SENT"
    FAILED = "FAILED"


class ReadStatus(StrEnum):
    """Which notifications to list by whether the customer has read them."""

    READ = "read"
    UNREAD = "unread"


class OrderLineFacts(FrozenModel):
    """An ordered item as a message lists it."""

    name: _Text
    quantity: StrictInt = Field(ge=1, le=100_000)
    line_total_cents: Cents


class OrderFacts(FrozenModel):
    """What a message about an order tells the customer; every field is optional.

    Filled by the order module from the stored order: the items and total of a confirmation, the
    carrier, tracking number and arrival date, the failure reason (a code such as
    `PAYMENT_DECLINED`, put in words by the message), the refund of a cancellation.
    """

    customer_name: _Text | None = None
    items: list[OrderLineFacts] = Field(default_factory=list, max_length=50)
    total_cents: Cents | None = None
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    shipping_method: _Text | None = None
    carrier: _Text | None = None
    tracking_number: _Text | None = None
    estimated_delivery: date | None = None
    payment: _Text | None = Field(default=None, description="How it was paid, e.g. `VISA ending 4242`.")
    failure_reason: str | None = Field(default=None, pattern=r"^[A-Z][A-Z_]{0,39}$")
    refund_cents: Cents | None = None

    @field_validator("estimated_delivery", mode="before")
    @classmethod
    def _date_not_number(cls, value: object) -> object:
        if value is None or isinstance(value, date | str):
            return value
        raise ValueError("a date, as YYYY-MM-DD")  # not a number of seconds since 1970


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
        strict=True,
        description=(
            "The caller's attempt at this send under `idempotency_key`, 1 first. A later attempt "
            "takes over the send an earlier one left unfinished (its caller stopped or gave up), "
            "instead of waiting for that attempt's claim to expire."
        ),
    )
    subject: str | None = Field(default=None, min_length=1, max_length=200)
    message: str | None = Field(default=None, min_length=1, max_length=2000)
    details: dict[DetailKey, DetailValue] = Field(default_factory=dict, max_length=20)
    recipient: EmailAddress | None = Field(
        default=None, description="Where the message goes; without one it cannot be sent (FAILED)."
    )
    order: OrderFacts | None = Field(default=None, description="What the message says about the order.")


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
    attempt: int = Field(default=1, ge=1, le=1_000_000, strict=True, description="As in `SendNotification`.")
    reason: str | None = Field(default=None, min_length=1, max_length=500)
    recipient: EmailAddress | None = None
    order: OrderFacts | None = None


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
    recipient: str | None = None
    order: OrderFacts | None = None
    message_id: str | None = Field(
        default=None, description="The `Message-ID` of its email: the same on every attempt."
    )
    delivery_reply: str | None = Field(
        default=None, description="What the channel answered when it accepted (SENT) or refused (FAILED) it."
    )
    last_error: str | None = Field(default=None, description="Why the last attempt failed, if it did.")


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


class OutboxMessage(FrozenModel):
    """A message in the development outbox (a `.eml` file), as listed."""

    name: str = Field(description="The file's name in the outbox folder.")
    message_id: str | None
    recipient: str | None
    subject: str | None
    date: datetime | None
    size: int


class MailHeader(FrozenModel):
    """One header of a message."""

    name: str
    value: str


class OutboxMessageDetail(OutboxMessage):
    """A message in the development outbox with its headers and both bodies."""

    headers: list[MailHeader]
    text: str | None
    html: str | None


class OutboxPage(FrozenModel):
    """The development outbox, newest first; `enabled` is false when mail goes to an SMTP server."""

    enabled: bool
    folder: str | None
    items: list[OutboxMessage]
    total: int


class OutboxMessageNotFoundError(NotFoundError):
    """No message by that name in the development outbox (or no outbox: mail goes to SMTP)."""

    code = "notification.outbox_message_not_found"
    title = "Outbox message not found"


class Outbox(Protocol):
    """The development outbox: where messages go when no SMTP server is configured."""

    async def list_messages(self, limit: int) -> OutboxPage:
        """The newest `limit` messages."""
        ...

    async def get_message(self, name: str) -> OutboxMessageDetail:
        """One message, parsed.

        Raises:
            OutboxMessageNotFoundError: If there is no such message.
        """
        ...


class NotificationService(Protocol):
    """The notification module's port."""

    async def send(self, command: SendNotification) -> Notification:
        """Send the notification, once per order and type; a repeat returns the first one.

        A channel that refuses the message for good (a 5xx for the recipient, no address) is no
        error: the notification comes back FAILED, with the reply, and is never sent again.

        Raises:
            NotificationDeliveryError: If the send failed in a way that may pass (the channel
                was unreachable, or answered "try again later"): retryable, a retry sends again.
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


# The read port the consistency audit uses (`operations/audit.py`): the module's records as
# stored, read whole, for rules that span modules. `books.py` implements it on the collection.


class NotificationEntry(FrozenModel):
    """One notification recorded for an order, as stored.

    Attributes:
        notification_id: The notification.
        order_id: The order it is about.
        type: Its kind, unparsed (``ORDER_CONFIRMED``, ``ORDER_FAILED``, ...).
    """

    notification_id: str
    order_id: str
    type: str


class NotificationBooks(Protocol):
    """The notification module's read port: its records as stored, for the consistency audit.

    Read-only and unpaged: each call reads the collection whole, in one pass.
    """

    async def notifications(self) -> list[NotificationEntry]:
        """Every notification, whatever its status."""
        ...
