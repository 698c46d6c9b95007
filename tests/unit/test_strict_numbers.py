"""Counts and amounts in request bodies are JSON integers: `true`, `"3"` and `3.0` are refused.

Pydantic's lax mode would read `true` as 1 and `"3"` as 3, so a client's bug (a boolean where a
quantity belongs) would place a real order. The request models mark these fields strict; the
problem+json for the 422 is the web layer's, as for any invalid body.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, ValidationError

from ecommerce_saga.modules.inventory.contract import ItemQuantity, NewProduct, Restock
from ecommerce_saga.modules.notification.contract import CancelNotification, SendNotification
from ecommerce_saga.modules.order.contract import PlaceOrder
from ecommerce_saga.modules.payment.contract import ChargePayment, PaymentDetails
from ecommerce_saga.web.problems import PROBLEM_MEDIA_TYPE, install_problem_handlers

NOT_INTEGERS = ["true", '"3"', "3.0"]


@pytest.mark.parametrize("value", NOT_INTEGERS)
@pytest.mark.parametrize(
    ("model", "field", "body"),
    [
        (ItemQuantity, "quantity", '{"product_id": "prod-1", "quantity": %s}'),
        (Restock, "quantity", '{"quantity": %s}'),
        (
            PaymentDetails,
            "expiry_month",
            '{"method": "CREDIT_CARD", "card_number": "4242424242424242", "expiry_month": %s,'
            ' "expiry_year": 2030, "cvv": "123"}',
        ),
    ],
)
def test_refuses_a_number_that_is_not_a_json_integer(
    model: type[BaseModel], field: str, body: str, value: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        model.model_validate_json(body % value)
    assert [error["type"] for error in refused.value.errors()] == ["int_type"]
    assert refused.value.errors()[0]["loc"] == (field,)


@pytest.mark.parametrize("model", [ItemQuantity, Restock])
def test_accepts_a_json_integer(model: type[BaseModel]) -> None:
    body = '{"product_id": "prod-1", "quantity": 3}' if model is ItemQuantity else '{"quantity": 3}'
    assert model.model_validate_json(body).quantity == 3  # type: ignore[attr-defined]


def test_strict_fields_cover_every_count_and_amount_a_client_sends() -> None:
    strict = {
        (model.__name__, name)
        for model in (
            ItemQuantity,
            NewProduct,
            Restock,
            PlaceOrder,
            PaymentDetails,
            ChargePayment,
            SendNotification,
            CancelNotification,
        )
        for name, field in model.model_fields.items()
        if any(getattr(meta, "strict", False) for meta in field.metadata)
    }
    assert strict >= {
        ("ItemQuantity", "quantity"),
        ("NewProduct", "price_cents"),
        ("NewProduct", "quantity"),
        ("Restock", "quantity"),
        ("PlaceOrder", "expected_total_cents"),
        ("PaymentDetails", "expiry_month"),
        ("PaymentDetails", "expiry_year"),
        ("ChargePayment", "amount_cents"),
        ("SendNotification", "attempt"),
        ("CancelNotification", "attempt"),
    }


async def test_a_boolean_quantity_answers_422_problem_json() -> None:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/lines")
    async def take(line: ItemQuantity) -> dict[str, Any]:
        return line.model_dump()

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        response = await client.post("/lines", json={"product_id": "prod-1", "quantity": True})

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
