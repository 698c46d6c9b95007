"""Emails from notifications: headers, both bodies per type, escaping, and a well-formed HTML part."""

from __future__ import annotations

from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from pydantic import ValidationError

from ecommerce_saga.modules.notification.contract import (
    Notification,
    NotificationStatus,
    NotificationType,
    OrderFacts,
    OrderLineFacts,
)
from ecommerce_saga.modules.notification.mail import NO_RECIPIENT, MailRenderer, ShopMail, message_id
from ecommerce_saga.modules.notification.outbox import OutboxSender
from ecommerce_saga.modules.notification.sender import DeliveryRefusedError
from ecommerce_saga.modules.notification.smtp import SmtpConfig, SmtpSecurity, SmtpSender

SHOP = ShopMail("Widget & Co", "orders@widgets.example", "help@widgets.example")
VOID = {"meta", "br", "hr", "img", "link", "input"}


class TagBalance(HTMLParser):
    """Checks that every element opened is closed, in order (void elements aside)."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.errors: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.scripts += 1
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.open[-1:]}")
            return
        self.open.pop()


def well_formed(html: str) -> TagBalance:
    checker = TagBalance()
    checker.feed(html)
    checker.close()
    return checker


def _notification(kind: NotificationType, **changes: object) -> Notification:
    facts = OrderFacts(
        customer_name="Ada <script>alert(1)</script> Lovelace",
        items=[
            OrderLineFacts(name="Mechanical keyboard", quantity=1, line_total_cents=8999),
            OrderLineFacts(name="Wireless mouse", quantity=2, line_total_cents=5998),
        ],
        total_cents=14997, currency="GBP", shipping_method="EXPRESS", carrier="DHL",
        tracking_number="JD0123456789", estimated_delivery=date(2030, 1, 8), payment="VISA ending 4242",
        failure_reason="PAYMENT_DECLINED" if kind is NotificationType.ORDER_FAILED else None,
        refund_cents=14997 if kind is NotificationType.ORDER_CANCELLED else None,
    )  # fmt: skip
    fields: dict[str, object] = {
        "notification_id": "ntf_1", "order_id": "ord_42", "customer_id": "cus_1", "type": kind,
        "channel": "email", "status": NotificationStatus.PENDING, "read": False,
        "subject": f"About your order ord_42 ({kind.value})", "message": "m",
        "created_at": datetime(2030, 1, 4, 12, 30, tzinfo=UTC), "recipient": "ada@example.com",
        "order": facts, "message_id": message_id("ord_42:send_confirmation", SHOP.domain),
    }  # fmt: skip
    return Notification.model_validate({**fields, **changes})


@pytest.mark.parametrize("kind", list(NotificationType))
def test_addresses_the_customer_with_stable_headers_when_rendered(kind: NotificationType) -> None:
    notification = _notification(kind)

    message = MailRenderer(SHOP).render(notification)

    assert message["To"] == "ada@example.com"
    [sender] = message["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("Widget & Co", "orders@widgets.example")
    assert message["Reply-To"] == "help@widgets.example"
    assert message["Subject"] == notification.subject
    assert message["Message-ID"] == notification.message_id
    assert parsedate_to_datetime(message["Date"]) == notification.created_at
    assert message["Auto-Submitted"] == "auto-generated"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert MailRenderer(SHOP).render(notification).as_bytes() == message.as_bytes()  # every attempt alike


def test_derives_the_message_id_from_the_idempotency_key_when_recorded() -> None:
    first = message_id("ord_42:send_confirmation", "widgets.example")

    assert first == message_id("ord_42:send_confirmation", "widgets.example")
    assert first != message_id("ord_43:send_confirmation", "widgets.example")
    assert first.startswith("<") and first.endswith("@widgets.example>")


def test_lists_items_total_delivery_and_arrival_when_order_is_confirmed() -> None:
    text, html = MailRenderer(SHOP).bodies(_notification(NotificationType.ORDER_CONFIRMED))

    for body in (text, html):
        assert "Mechanical keyboard" in body and "89.99 GBP" in body
        assert "2 x Wireless mouse" in body or ("2 &#215;" in body and "Wireless mouse" in body)
        assert "149.97 GBP" in body
        assert "DHL" in body and "JD0123456789" in body
        assert "Tuesday 8 January 2030" in body
        assert "help@widgets.example" in body and "Widget &" in body


def test_says_why_in_words_when_order_failed() -> None:
    text, html = MailRenderer(SHOP).bodies(_notification(NotificationType.ORDER_FAILED))

    for body in (text, html):
        assert "your payment was declined" in body
        assert "PAYMENT_DECLINED" not in body


def test_states_the_refund_when_order_is_cancelled() -> None:
    text, html = MailRenderer(SHOP).bodies(_notification(NotificationType.ORDER_CANCELLED))

    for body in (text, html):
        assert "refunded" in body and "149.97 GBP" in body and "VISA ending 4242" in body


@pytest.mark.parametrize("kind", list(NotificationType))
def test_html_is_well_formed_and_customer_text_inert_when_a_name_holds_a_script(
    kind: NotificationType,
) -> None:
    _, html = MailRenderer(SHOP).bodies(_notification(kind))

    checker = well_formed(html)
    assert checker.errors == [] and checker.open == []
    assert checker.scripts == 0
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Widget &amp; Co" in html


def test_refuses_for_good_when_there_is_no_recipient() -> None:
    with pytest.raises(DeliveryRefusedError) as refused:
        MailRenderer(SHOP).render(_notification(NotificationType.ORDER_CONFIRMED, recipient=None))

    assert refused.value.reply == NO_RECIPIENT


def test_email_senders_screen_out_a_notification_without_a_recipient_before_trying(tmp_path: Path) -> None:
    renderer = MailRenderer(SHOP)
    config = SmtpConfig(host="127.0.0.1", port=1, security=SmtpSecurity.NONE)
    senders = [OutboxSender(tmp_path, renderer), SmtpSender(config, renderer)]
    unaddressed = _notification(NotificationType.ORDER_CONFIRMED, recipient=None)
    addressed = _notification(NotificationType.ORDER_CONFIRMED, recipient="ada@example.com")

    assert [sender.screen(unaddressed) for sender in senders] == [NO_RECIPIENT, NO_RECIPIENT]
    assert [sender.screen(addressed) for sender in senders] == [None, None]
    assert list(tmp_path.iterdir()) == []  # screening writes nothing


def test_greets_without_a_name_and_lists_nothing_when_the_order_is_unknown() -> None:
    text, html = MailRenderer(SHOP).bodies(_notification(NotificationType.ORDER_CONFIRMED, order=None))

    assert text.startswith("Hello,")
    assert well_formed(html).errors == []


@pytest.mark.parametrize("field", ["refund_cents", "total_cents"])
def test_refuses_order_facts_when_an_amount_is_not_an_integer(field: str) -> None:
    with pytest.raises(ValidationError):
        OrderFacts.model_validate({field: False})
    with pytest.raises(ValidationError):
        OrderFacts.model_validate({field: 12.5})


def test_refuses_an_arrival_date_given_as_a_number() -> None:
    with pytest.raises(ValidationError):
        OrderFacts.model_validate({"estimated_delivery": 0})

    assert OrderFacts.model_validate({"estimated_delivery": "2030-01-08"}).estimated_delivery == date(
        2030, 1, 8
    )
