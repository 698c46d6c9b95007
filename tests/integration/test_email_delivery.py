"""Notifications through a real SMTP server (aiosmtpd) and the development outbox.

The notification service runs on the test database with the SMTP sender; the server accepts,
defers (4xx) or refuses (5xx) on demand, or is not there at all.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from beanie import init_beanie
from fastapi import FastAPI
from pymongo.asynchronous.database import AsyncDatabase

from ecommerce_saga.bootstrap import smtp_config
from ecommerce_saga.db.embedded import free_port
from ecommerce_saga.modules.notification.contract import (
    CancelNotification,
    Notification,
    NotificationDeliveryError,
    NotificationFilter,
    NotificationStatus,
    NotificationType,
    OrderFacts,
    OrderLineFacts,
    SendNotification,
)
from ecommerce_saga.modules.notification.documents import DOCUMENT_MODELS
from ecommerce_saga.modules.notification.mail import MailRenderer, ShopMail
from ecommerce_saga.modules.notification.outbox import FileOutbox, OutboxSender
from ecommerce_saga.modules.notification.repository import BeanieNotificationRepository
from ecommerce_saga.modules.notification.router import build_router
from ecommerce_saga.modules.notification.service import LocalNotificationService
from ecommerce_saga.modules.notification.smtp import SmtpConfig, SmtpSecurity, SmtpSender
from ecommerce_saga.settings import Settings
from ecommerce_saga.web.auth import Authenticator
from ecommerce_saga.web.problems import install_problem_handlers
from tests.smtp_server import DEFERRED, REFUSED, TestSmtpServer, self_signed_certificate

SHOP = ShopMail("Widget & Co", "orders@widgets.example", "help@widgets.example")
FACTS = OrderFacts(
    customer_name="Grace <b>Hopper</b>",
    items=[OrderLineFacts(name="Widget", quantity=2, line_total_cents=2500)],
    total_cents=2500, currency="USD", carrier="UPS", tracking_number="1Z0001",
)  # fmt: skip


@pytest.fixture
def smtp() -> Iterator[TestSmtpServer]:
    """A running SMTP server of the test's own."""
    server = TestSmtpServer().start()
    try:
        yield server
    finally:
        server.stop()


def _sender(port: int) -> SmtpSender:
    config = SmtpConfig(host="127.0.0.1", port=port, security=SmtpSecurity.NONE, timeout_seconds=5)
    return SmtpSender(config, MailRenderer(SHOP))


@pytest.fixture
async def service(mongo_db: AsyncDatabase[dict[str, Any]], smtp: TestSmtpServer) -> LocalNotificationService:
    """The notification service sending to `smtp`."""
    await init_beanie(database=mongo_db, document_models=DOCUMENT_MODELS)
    return LocalNotificationService(
        BeanieNotificationRepository(), _sender(smtp.port), message_domain=SHOP.domain
    )


def _send(
    recipient: str, attempt: int = 1, kind: NotificationType = NotificationType.ORDER_CONFIRMED
) -> SendNotification:
    order_id = f"ord_{uuid.uuid4().hex[:12]}"
    return SendNotification(
        order_id=order_id, customer_id="cus_grace", type=kind, idempotency_key=f"{order_id}:notify",
        attempt=attempt, recipient=recipient, order=FACTS,
    )  # fmt: skip


async def _stored(service: LocalNotificationService) -> Notification:
    """The one notification of the test's database (each test has its own)."""
    [stored] = (await service.list_notifications(NotificationFilter())).items
    return stored


def _address() -> str:
    return f"grace-{uuid.uuid4().hex[:8]}@example.com"


async def test_delivers_one_message_with_its_message_id_when_the_server_accepts(
    service: LocalNotificationService, smtp: TestSmtpServer
) -> None:
    address = _address()

    sent = await service.send(_send(address))
    again = await service.send(
        _send(address).model_copy(
            update={"order_id": sent.order_id, "idempotency_key": f"{sent.order_id}:notify"}
        )
    )

    [received] = smtp.messages_to(address)
    assert received.sender == "orders@widgets.example"
    assert received.message["Message-ID"] == sent.message_id
    assert received.message["Subject"] == sent.subject
    assert "Grace &lt;b&gt;Hopper&lt;/b&gt;" in received.body("html")
    assert "2 x Widget" in received.body("plain")
    assert (sent.status, sent.delivery_reply) == (NotificationStatus.SENT, "250 2.0.0 Ok: queued")
    assert again == sent


async def test_retries_and_delivers_exactly_once_when_the_server_defers_first(
    service: LocalNotificationService, smtp: TestSmtpServer
) -> None:
    address = _address()
    smtp.defer(2)
    command = _send(address)

    for attempt in (1, 2):
        with pytest.raises(NotificationDeliveryError):
            await service.send(command.model_copy(update={"attempt": attempt}))
    pending = await _stored(service)
    sent = await service.send(command.model_copy(update={"attempt": 3}))

    assert pending.status is NotificationStatus.PENDING and pending.last_error == DEFERRED
    assert sent.status is NotificationStatus.SENT
    assert len(smtp.messages_to(address)) == 1


async def test_records_failed_with_the_reply_and_never_resends_when_the_recipient_is_refused(
    service: LocalNotificationService, smtp: TestSmtpServer
) -> None:
    address = _address()
    smtp.refuse(address)
    command = _send(address)

    failed = await service.send(command)
    again = await service.send(command.model_copy(update={"attempt": 2}))

    assert failed.status is NotificationStatus.FAILED
    assert failed.delivery_reply == REFUSED
    assert failed.sent_at is None
    assert again == failed
    assert smtp.messages_to(address) == []


async def test_keeps_pending_and_raises_retryable_when_no_server_listens(
    mongo_db: AsyncDatabase[dict[str, Any]],
) -> None:
    await init_beanie(database=mongo_db, document_models=DOCUMENT_MODELS)
    service = LocalNotificationService(BeanieNotificationRepository(), _sender(free_port()))
    command = _send(_address())

    with pytest.raises(NotificationDeliveryError) as raised:
        await service.send(command)

    assert raised.value.retryable
    assert (await _stored(service)).status is NotificationStatus.PENDING


async def test_sends_the_refund_when_a_cancellation_is_sent(
    service: LocalNotificationService, smtp: TestSmtpServer
) -> None:
    address, order_id = _address(), f"ord_{uuid.uuid4().hex[:12]}"
    facts = FACTS.model_copy(update={"refund_cents": 2500, "payment": "VISA ending 4242"})

    await service.cancel(CancelNotification(
        order_id=order_id, customer_id="cus_grace", idempotency_key=f"{order_id}:cancel",
        recipient=address, order=facts,
    ))  # fmt: skip

    [received] = smtp.messages_to(address)
    assert "We have refunded 25.00 USD to VISA ending 4242" in received.body("plain")


@pytest.fixture
async def outbox_client(
    mongo_db: AsyncDatabase[dict[str, Any]], tmp_path: Path
) -> AsyncIterator[tuple[LocalNotificationService, httpx.AsyncClient]]:
    """The service on the development outbox, and a client of its router (operator and customer)."""
    await init_beanie(database=mongo_db, document_models=DOCUMENT_MODELS)
    folder = tmp_path / "outbox"
    service = LocalNotificationService(
        BeanieNotificationRepository(), OutboxSender(folder, MailRenderer(SHOP)), message_domain=SHOP.domain
    )
    app = FastAPI()
    install_problem_handlers(app)
    auth = Authenticator(service_tokens=["svc"], admin_tokens=["ops"])
    app.include_router(build_router(service, auth, FileOutbox(folder)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop.test") as http:
        yield service, http


async def test_lists_and_shows_the_message_when_mail_goes_to_the_outbox(
    outbox_client: tuple[LocalNotificationService, httpx.AsyncClient],
) -> None:
    service, http = outbox_client
    address = _address()
    sent = await service.send(_send(address))
    resent = await service.send(
        _send(address).model_copy(
            update={"order_id": sent.order_id, "idempotency_key": f"{sent.order_id}:notify"}
        )
    )
    ops = {"Authorization": "Bearer ops"}

    listing = (await http.get("/api/notifications/outbox", headers=ops)).json()
    [item] = [m for m in listing["items"] if m["recipient"] == address]
    shown = (await http.get(f"/api/notifications/outbox/{item['name']}", headers=ops)).json()
    as_service = await http.get("/api/notifications/outbox", headers={"Authorization": "Bearer svc"})
    missing = await http.get("/api/notifications/outbox/20300101T000000-ntf_none.eml", headers=ops)
    traversal = await http.get("/api/notifications/outbox/..%2F..%2Fetc%2Fpasswd", headers=ops)

    assert resent == sent
    assert listing["enabled"] is True and listing["total"] == 1
    assert sent.delivery_reply is not None and item["name"] in sent.delivery_reply
    assert (shown["message_id"], shown["subject"]) == (sent.message_id, sent.subject)
    assert "2 x Widget" in shown["text"] and "Grace &lt;b&gt;Hopper&lt;/b&gt;" in shown["html"]
    assert {"name": "Auto-Submitted", "value": "auto-generated"} in shown["headers"]
    assert as_service.status_code == 403
    assert missing.status_code == 404
    assert missing.json()["code"] == "notification.outbox_message_not_found"
    assert traversal.status_code in (404, 422)


async def test_sends_over_starttls_with_a_login_and_defers_when_the_login_is_wrong(
    mongo_db: AsyncDatabase[dict[str, Any]], tmp_path: Path
) -> None:
    await init_beanie(database=mongo_db, document_models=DOCUMENT_MODELS)
    certificate = self_signed_certificate(tmp_path)
    smtp = TestSmtpServer(certificate=certificate, login=("shop", "s3cret")).start()
    try:

        def sender(security: SmtpSecurity, password: str | None) -> SmtpSender:
            config = SmtpConfig(
                host="127.0.0.1", port=smtp.port, security=security, username=password and "shop",
                password=password, timeout_seconds=5, ca_file=str(certificate[0]),
            )  # fmt: skip
            return SmtpSender(config, MailRenderer(SHOP))

        address = _address()
        wrong_login = LocalNotificationService(
            BeanieNotificationRepository(), sender(SmtpSecurity.STARTTLS, "wrong")
        )
        no_tls = LocalNotificationService(BeanieNotificationRepository(), sender(SmtpSecurity.NONE, None))
        right = LocalNotificationService(
            BeanieNotificationRepository(), sender(SmtpSecurity.STARTTLS, "s3cret")
        )
        command = _send(address)
        with pytest.raises(NotificationDeliveryError):
            await wrong_login.send(command)
        after_wrong_login = (await _stored(right)).last_error
        with pytest.raises(NotificationDeliveryError):
            await no_tls.send(command.model_copy(update={"attempt": 2}))
        after_no_tls = (await _stored(right)).last_error
        sent = await right.send(command.model_copy(update={"attempt": 3}))
    finally:
        smtp.stop()

    assert after_wrong_login is not None and after_wrong_login.startswith("login refused: 535")
    assert after_no_tls is not None and after_no_tls.startswith("530")  # a session 5xx: retried
    assert sent.status is NotificationStatus.SENT
    assert len(smtp.messages_to(address)) == 1


def test_reads_the_password_from_its_file_when_one_is_given(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("from-a-secret\n")

    config = smtp_config(Settings(smtp_host="relay.example", smtp_password_file=secret, smtp_tls="tls"))

    assert (config.password, config.port, config.security) == ("from-a-secret", 465, SmtpSecurity.TLS)
    assert "from-a-secret" not in repr(config)
    with pytest.raises(ValueError, match="not both"):
        Settings(smtp_host="relay.example", smtp_password="x", smtp_password_file=secret)
