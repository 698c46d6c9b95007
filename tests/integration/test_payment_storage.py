"""What the payment module stores in MongoDB: never a card number or a CVV, in any collection."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from beanie import init_beanie
from pymongo.asynchronous.database import AsyncDatabase

from ecommerce_saga.modules.payment.contract import (
    ChargePayment,
    PaymentDeclinedError,
    PaymentDetails,
    PaymentMethodKind,
    RefundPayment,
)
from ecommerce_saga.modules.payment.documents import DOCUMENT_MODELS
from ecommerce_saga.modules.payment.gateway import SandboxGateway
from ecommerce_saga.modules.payment.repository import BeaniePaymentRepository, BeanieSandboxLedger
from ecommerce_saga.modules.payment.service import LocalPaymentService

CARD_NUMBER = "5555555555554444"
CVV = "4321"


@pytest.fixture
async def payment_db(mongo_db: AsyncDatabase[dict[str, Any]]) -> AsyncDatabase[dict[str, Any]]:
    await init_beanie(database=mongo_db, document_models=DOCUMENT_MODELS)
    return mongo_db


def card(number: str = CARD_NUMBER) -> PaymentDetails:
    return PaymentDetails.model_validate(
        {"method": "DEBIT_CARD", "card_number": number, "expiry_month": 1, "expiry_year": 2099, "cvv": CVV}
    )


async def test_stores_no_card_number_or_cvv_when_cards_are_tokenized_charged_and_refunded(
    payment_db: AsyncDatabase[dict[str, Any]],
) -> None:
    service = LocalPaymentService(BeaniePaymentRepository(), SandboxGateway(BeanieSandboxLedger()))
    numbers = [CARD_NUMBER, "4000000000000002"]
    for n, number in enumerate(numbers):
        method = await service.tokenize(card(number))
        command = ChargePayment(
            order_id=f"ord_{n}", customer_id="cus_1", amount_cents=100, payment_token=method.token,
            idempotency_key="k",
        )  # fmt: skip
        with contextlib.suppress(PaymentDeclinedError):
            await service.charge(command)
        await service.refund(RefundPayment(order_id=f"ord_{n}", idempotency_key="r"))
    await service.tokenize(PaymentDetails(method=PaymentMethodKind.PAYPAL, paypal_email="a@example.com"))

    stored = [
        doc for name in await payment_db.list_collection_names() async for doc in payment_db[name].find()
    ]
    assert len(stored) == 8  # 2 payments, 3 vaulted methods, 2 charges and 1 refund
    for doc in stored:
        text = str(doc)
        assert all(number not in text and number[-8:] not in text for number in numbers)
        assert CVV not in doc.values()
        assert not {"card_number", "cvv"} & doc.keys()
    for model in DOCUMENT_MODELS:
        for found in await model.find_all().to_list():
            assert all(number not in found.model_dump_json() for number in numbers)
