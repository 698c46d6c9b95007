"""The shop's emails through a real SMTP server: what each outcome sends, retries, refusals.

One app for the module, told to send mail to an aiosmtpd server of the test's own; customers order
with tokens carrying an `email` claim (or name a `contact_email`), as a shop's front end does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ADMIN_TOKEN, LiveApp, Shop, start_app
from tests.e2e.shop import ADDRESS, DECLINED_CARD, new_product, order_body, unique
from tests.identity_provider import shared_provider
from tests.smtp_server import REFUSED, Received, TestSmtpServer
from tests.unit.test_notification_mail import well_formed
from tests.waiting import eventually_blocking

pytestmark = pytest.mark.e2e

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SCRIPT_NAME = "Grace <script>alert('x')</script> Hopper"


@pytest.fixture(scope="module")
def smtp() -> Iterator[TestSmtpServer]:
    """The mail relay the shop sends to."""
    server = TestSmtpServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def mailing_shop(
    mongo_url: str, tmp_path_factory: pytest.TempPathFactory, smtp: TestSmtpServer
) -> Iterator[Shop]:
    """The shop in one process, sending its notifications to `smtp`."""
    app: LiveApp = start_app(
        mongo_url, tmp_path_factory.mktemp("mail"), **smtp.settings(),
        SHOP_SMTP_FROM="orders@shop.example", SHOP_SHOP_NAME="Test & Shop",
        SHOP_SHOP_SUPPORT_EMAIL="help@shop.example",
    )  # fmt: skip
    try:
        yield Shop.monolith(app)
    finally:
        app.stop()


def _customer(shop: Shop) -> tuple[str, str, httpx.Client]:
    customer, address = unique("cust"), f"{unique('mail')}@example.com"
    token = shared_provider().token(customer, email=address)
    return customer, address, shop.client(token)


def _without_customer(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != "customer_id"}


def _settled_notice(client: httpx.Client, order_id: str) -> dict[str, Any]:
    def notice() -> dict[str, Any] | None:
        items = client.get("/api/notifications", params={"limit": 100}).json()["items"]
        return next((n for n in items if n["order_id"] == order_id and n["status"] != "PENDING"), None)

    found = eventually_blocking(notice, lambda n: n is not None, timeout=30)
    assert found is not None, f"the notice of {order_id} was never settled"
    return found


def _one_message(smtp: TestSmtpServer, address: str, message_id: str) -> Received:
    [received] = [r for r in smtp.messages_to(address) if r.message["Message-ID"] == message_id]
    return received


def _check_message(received: Received, notice: dict[str, Any], address: str) -> tuple[str, str]:
    message = received.message
    assert received.recipients == [address] and message["To"] == address
    assert received.sender == "orders@shop.example"
    assert message["Subject"] == notice["subject"]
    assert message["Message-ID"] == notice["message_id"]
    assert message["Reply-To"] == "help@shop.example"
    assert message["X-Order-Id"] == notice["order_id"]
    text, html = received.body("plain"), received.body("html")
    checker = well_formed(html)
    assert checker.errors == [] and checker.open == [] and checker.scripts == 0
    assert "<script" not in html
    assert "Test &amp; Shop" in html and "Test & Shop" in text
    return text, html


def test_sends_the_expected_email_for_each_demo_outcome(mailing_shop: Shop, smtp: TestSmtpServer) -> None:
    customer, address, client = _customer(mailing_shop)
    with client, mailing_shop.client() as operator:
        product = new_product(operator, ADMIN, quantity=5, price_cents=1250)
        empty = new_product(operator, ADMIN, quantity=0)
        named = {**ADDRESS, "name": SCRIPT_NAME}
        outcomes = {
            "COMPLETED": order_body(product, quantity=2, shipping_address=named, shipping_method="EXPRESS"),
            "INVENTORY_UNAVAILABLE": order_body(empty, shipping_address=named),
            "PAYMENT_DECLINED": order_body(product, payment=DECLINED_CARD, shipping_address=named),
            "SHIPPING_UNAVAILABLE": order_body(product, shipping_address={**named, "country": "BR"}),
        }
        texts: dict[str, str] = {}
        for outcome, body in outcomes.items():
            response = client.post("/api/orders", json=_without_customer(body))
            assert response.status_code == 201, response.text
            order = response.json()
            assert outcome in (order["status"], order["failure_reason"]), order
            assert order["contact_email"] == address
            notice = _settled_notice(client, order["order_id"])
            assert (notice["status"], notice["recipient"]) == ("SENT", address), notice
            assert notice["delivery_reply"] == "250 2.0.0 Ok: queued"
            texts[outcome], html = _check_message(
                _one_message(smtp, address, notice["message_id"]), notice, address
            )
            assert "Dear Grace &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; Hopper," in html
            if outcome == "COMPLETED":
                completed = order

    confirmed = texts["COMPLETED"]
    assert "2 x Widget  25.00 USD" in confirmed and "Total: 25.00 USD" in confirmed
    assert completed["tracking_number"] in confirmed and "Delivery: " in confirmed
    assert "Expected arrival: " in confirmed
    assert "an item you ordered is out of stock" in texts["INVENTORY_UNAVAILABLE"]
    assert "your payment was declined" in texts["PAYMENT_DECLINED"]
    assert "we cannot deliver to the address you gave" in texts["SHIPPING_UNAVAILABLE"]
    assert len(smtp.messages_to(address)) == 4, customer


def test_sends_the_refund_when_the_customer_cancels(mailing_shop: Shop, smtp: TestSmtpServer) -> None:
    _, address, client = _customer(mailing_shop)
    with client, mailing_shop.client() as operator:
        product = new_product(operator, ADMIN, quantity=5, price_cents=4000)
        order = client.post("/api/orders", json=_without_customer(order_body(product))).json()
        assert order["status"] == "COMPLETED", order
        cancelled = client.post(f"/api/orders/{order['order_id']}/cancel")
        assert cancelled.json()["status"] == "CANCELLED", cancelled.text
        notices = eventually_blocking(
            lambda: [n for n in client.get("/api/notifications").json()["items"] if n["status"] == "SENT"],
            lambda found: len(found) == 2,
            timeout=30,
        )

    [cancel_notice] = [n for n in notices if n["type"] == "ORDER_CANCELLED"]
    text, html = _check_message(
        _one_message(smtp, address, cancel_notice["message_id"]), cancel_notice, address
    )
    assert "We have refunded 40.00 USD to Visa ending 4242" in text
    assert "40.00 USD" in html


def test_writes_to_the_address_the_order_names_rather_than_the_token(
    mailing_shop: Shop, smtp: TestSmtpServer
) -> None:
    _, token_address, client = _customer(mailing_shop)
    chosen = f"{unique('other')}@example.org"
    with client, mailing_shop.client() as operator:
        product = new_product(operator, ADMIN, quantity=5)
        body = {**_without_customer(order_body(product)), "contact_email": chosen}
        order = client.post("/api/orders", json=body).json()
        invalid = client.post("/api/orders", json={**body, "contact_email": "not an address\r\nBcc: x@y.z"})
        notice = _settled_notice(client, order["order_id"])

    assert (order["contact_email"], notice["recipient"]) == (chosen, chosen)
    assert len(smtp.messages_to(chosen)) == 1 and smtp.messages_to(token_address) == []
    assert invalid.status_code == 422
    assert invalid.headers["content-type"].startswith("application/problem+json")


def test_retries_and_delivers_exactly_once_when_the_server_defers(
    mailing_shop: Shop, smtp: TestSmtpServer
) -> None:
    _, address, client = _customer(mailing_shop)
    with client, mailing_shop.client() as operator:
        product = new_product(operator, ADMIN, quantity=5)
        smtp.defer(2)
        order = client.post("/api/orders", json=_without_customer(order_body(product))).json()
        notice = _settled_notice(client, order["order_id"])
        history = eventually_blocking(
            lambda: operator.get(f"/api/orders/{order['order_id']}").json()["history"],
            lambda entries: any(
                e["step"] == "send_confirmation" and e["status"] == "SUCCEEDED" for e in entries
            ),
        )

    attempts = [e for e in history if e["step"] == "send_confirmation"]
    assert [e["status"] for e in attempts] == ["FAILED", "FAILED", "SUCCEEDED"], attempts
    assert notice["status"] == "SENT"
    assert len(smtp.messages_to(address)) == 1


def test_records_failed_with_the_reply_and_keeps_the_order_when_the_recipient_is_refused(
    mailing_shop: Shop, smtp: TestSmtpServer
) -> None:
    _, address, client = _customer(mailing_shop)
    smtp.refuse(address)
    with client, mailing_shop.client() as operator:
        product = new_product(operator, ADMIN, quantity=5)
        order = client.post("/api/orders", json=_without_customer(order_body(product))).json()
        notice = _settled_notice(client, order["order_id"])
        saga = eventually_blocking(
            lambda: operator.get(f"/api/sagas/{order['saga_id']}").json(),
            lambda s: s["status"] == "COMPLETED",
        )
        final = operator.get(f"/api/orders/{order['order_id']}").json()

    assert (notice["status"], notice["delivery_reply"]) == ("FAILED", REFUSED)
    assert final["status"] == "COMPLETED" and saga["status"] == "COMPLETED"
    assert smtp.messages_to(address) == []


def test_never_logs_the_customer_address(mailing_shop: Shop, smtp: TestSmtpServer, tmp_path: Path) -> None:
    _, address, client = _customer(mailing_shop)
    smtp.refuse(address)  # a refusal's reply names no address here, but the log must not either way
    with client, mailing_shop.client() as operator:
        product = new_product(operator, ADMIN, quantity=5)
        order = client.post("/api/orders", json=_without_customer(order_body(product))).json()
        _settled_notice(client, order["order_id"])

    assert address not in mailing_shop.apps["order"].log.read_text()
