"""Notification texts, commands and the logging sender."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from ecommerce_saga.modules.notification.contract import (
    Notification,
    NotificationStatus,
    NotificationType,
    SendNotification,
)
from ecommerce_saga.modules.notification.sender import LoggingSender
from ecommerce_saga.modules.notification.service import default_text


@pytest.mark.parametrize("notification_type", list(NotificationType))
def test_names_the_order_when_using_default_text(notification_type: NotificationType) -> None:
    subject, message = default_text(notification_type, "ord_42")

    assert "ord_42" in subject
    assert "ord_42" in message


def test_default_texts_differ_when_types_differ() -> None:
    subjects = {default_text(kind, "ord_42")[0] for kind in NotificationType}

    assert len(subjects) == len(NotificationType)


def test_confirmation_says_confirmed_when_using_default_text() -> None:
    subject, _ = default_text(NotificationType.ORDER_CONFIRMED, "ord_42")

    assert subject == "Your order ord_42 is confirmed"


def test_cancellation_mentions_refund_when_using_default_text() -> None:
    _, message = default_text(NotificationType.ORDER_CANCELLED, "ord_42")

    assert "cancelled" in message
    assert "refunded" in message


def _send(**changes: object) -> SendNotification:
    fields: dict[str, object] = {
        "order_id": "ord_42",
        "customer_id": "cus_1",
        "type": "ORDER_CONFIRMED",
        "idempotency_key": "k1",
    }
    return SendNotification.model_validate({**fields, **changes})


def test_accepts_strings_and_integers_when_given_details() -> None:
    command = _send(details={"total_cents": 1999, "currency": "USD"})

    assert command.details == {"total_cents": 1999, "currency": "USD"}


@pytest.mark.parametrize(
    "details",
    [
        {"$where": "1"},
        {"a.b": "x"},
        {"nested": {"$ne": 1}},
        {"flag": True},
        {"amount": 1.5},
        {"big": 10**18},
        {f"k{i}": i for i in range(21)},
    ],
)
def test_rejects_details_when_keys_or_values_are_unsafe(details: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        _send(details=details)


@pytest.mark.parametrize("order_id", ["", "a.b", "$ne", "x" * 65])
def test_rejects_command_when_order_id_is_unsafe(order_id: str) -> None:
    with pytest.raises(ValidationError):
        _send(order_id=order_id)


async def test_logs_who_and_what_but_no_details_when_logging_sender_sends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    notification = Notification(
        notification_id="ntf_1", order_id="ord_42", customer_id="cus_1",
        type=NotificationType.ORDER_CONFIRMED, channel="email", status=NotificationStatus.PENDING,
        read=False, subject="s", message="m", details={"card_last4": "4242"},
        created_at=datetime(2030, 1, 4, tzinfo=UTC),
    )  # fmt: skip

    with caplog.at_level(logging.INFO, logger="ecommerce_saga.modules.notification.sender"):
        await LoggingSender().send(notification)

    [record] = caplog.records
    assert record.__dict__["order_id"] == "ord_42"
    assert record.__dict__["customer_id"] == "cus_1"
    assert record.__dict__["notification_type"] == "ORDER_CONFIRMED"
    assert record.__dict__["channel"] == "email"
    assert "4242" not in repr(record.__dict__)
