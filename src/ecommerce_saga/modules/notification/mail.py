"""Notifications as emails: a subject, a plain-text and an HTML body from templates, and the headers.

The templates live beside this file (`templates/<type>.txt` and `.html`, Jinja2). HTML is rendered
with autoescaping, so whatever a customer typed (a name, an address) arrives as text, never as
markup; the plain-text part is not escaped, since it is never interpreted. The `Message-ID` and
`Date` come from the stored notification, so every attempt at one notification produces the same
message, and a mail system that sees it twice can tell.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from ecommerce_saga.modules.notification.contract import Notification, NotificationType, OrderFacts
from ecommerce_saga.modules.notification.sender import DeliveryRefusedError

NO_RECIPIENT = "no email address: the order named none and the customer's token carried none"

REASONS = {
    "INVENTORY_UNAVAILABLE": "an item you ordered is out of stock",
    "PAYMENT_DECLINED": "your payment was declined",
    "SHIPPING_UNAVAILABLE": "we cannot deliver to the address you gave",
    "SERVICE_UNAVAILABLE": "one of our systems was unavailable",
    "CANCELLED_BY_OPERATOR": "our team had to cancel it",
    "DEADLINE_EXCEEDED": "it could not be completed in time",
}
"""Failure reasons in words, for the ORDER_FAILED message."""

_TEMPLATES = {
    NotificationType.ORDER_CONFIRMED: "order_confirmed",
    NotificationType.ORDER_FAILED: "order_failed",
    NotificationType.ORDER_CANCELLED: "order_cancelled",
}


@dataclass(frozen=True)
class ShopMail:
    """Who the shop's emails are from, and where customers write back."""

    shop_name: str
    from_address: str
    support_address: str

    @property
    def domain(self) -> str:
        """The sending domain, the right-hand side of every `Message-ID`."""
        return self.from_address.rpartition("@")[2] or "localhost"


def message_id(idempotency_key: str, domain: str) -> str:
    """The `Message-ID` of the notification first recorded under `idempotency_key`."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return f"<{digest}@{domain}>"


def money(cents: int | None, currency: str | None) -> str:
    """An amount in minor units as `12.34 GBP`."""
    if cents is None:
        return ""
    return f"{cents // 100}.{cents % 100:02d} {currency or ''}".strip()


def reason_in_words(code: str | None) -> str:
    """A failure reason code as a sentence fragment."""
    return REASONS.get(code or "", "something went wrong on our side")


def long_date(value: date | None) -> str:
    """`Friday 4 January 2030`."""
    return "" if value is None else f"{value:%A} {value.day} {value:%B %Y}"


class MailRenderer:
    """Turns a notification into the email a customer receives."""

    def __init__(self, shop: ShopMail) -> None:
        self.shop = shop
        self._env = Environment(
            loader=PackageLoader("ecommerce_saga.modules.notification", "templates"),
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self._env.filters["money"] = lambda cents, currency=None: money(cents, currency)
        self._env.filters["reason"] = reason_in_words
        self._env.filters["long_date"] = long_date

    def bodies(self, notification: Notification) -> tuple[str, str]:
        """The plain-text and HTML bodies."""
        name = _TEMPLATES[notification.type]
        context = {
            "shop": self.shop,
            "notification": notification,
            "order": notification.order or OrderFacts(),
            "reason": notification.details.get("reason"),
        }
        text = self._env.get_template(f"{name}.txt").render(context)
        html = self._env.get_template(f"{name}.html").render(context)
        return text, html

    @staticmethod
    def screen(notification: Notification) -> str | None:
        """Why `notification` cannot be an email (it has no address), or None if it can."""
        return NO_RECIPIENT if notification.recipient is None else None

    def render(self, notification: Notification) -> EmailMessage:
        """The whole message: headers, then text and HTML as alternatives.

        Raises:
            DeliveryRefusedError: If the notification has no recipient.
        """
        refusal = self.screen(notification)
        if refusal is not None:
            raise DeliveryRefusedError(refusal)
        text, html = self.bodies(notification)
        message = EmailMessage()
        message["From"] = Address(self.shop.shop_name, addr_spec=self.shop.from_address)
        message["To"] = notification.recipient
        message["Reply-To"] = self.shop.support_address
        message["Subject"] = notification.subject
        message["Date"] = format_datetime(notification.created_at)
        mid = notification.message_id or message_id(notification.notification_id, self.shop.domain)
        message["Message-ID"] = mid
        message["Auto-Submitted"] = "auto-generated"
        message["X-Order-Id"] = notification.order_id
        message["X-Notification-Type"] = notification.type.value
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        message.set_boundary(f"=_part_{hashlib.sha256(mid.encode()).hexdigest()[:24]}")  # not random
        return message
