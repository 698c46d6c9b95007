"""`LocalOrderService` with fake participants: catalog prices, idempotent placing, no card data kept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from ecommerce_saga.modules.inventory.contract import ItemQuantity
from ecommerce_saga.modules.order.contract import (
    IdempotencyKeyReusedError,
    OrderFilter,
    OrderStatus,
    PlaceOrder,
    PriceChangedError,
)
from ecommerce_saga.modules.order.repository import OrderRecord
from ecommerce_saga.modules.order.saga import PLACE_ORDER
from ecommerce_saga.modules.order.service import request_fingerprint
from ecommerce_saga.modules.order.tracker import OrderTracker
from ecommerce_saga.saga import SagaQuery, SagaStatus
from tests.fakes.shop import CARD_NUMBER, CVV, Shop, card, open_shop, place_order

OTHER_CARD_SAME_ENDING = "4000000000024242"  # 16 digits, Luhn-valid, also ending in 4242


@pytest.fixture
async def shop() -> AsyncIterator[Shop]:
    async with open_shop() as shop:
        yield shop


async def stored_orders(shop: Shop) -> int:
    return (await shop.orders.find(OrderFilter()))[1]


async def place_order_sagas(shop: Shop) -> int:
    return (await shop.engine.find(SagaQuery(saga_type=PLACE_ORDER)))[1]


async def test_prices_order_from_the_catalog_when_placing(shop: Shop) -> None:
    placed = await shop.service.place(place_order(("sku-desk", 2), ("sku-lamp", 1)))

    order = placed.order
    assert (placed.settled, order.status) == (True, OrderStatus.COMPLETED)
    assert [(i.product_id, i.price_cents, i.line_total_cents) for i in order.items] == [
        ("sku-desk", 25_000, 50_000),
        ("sku-lamp", 4_500, 4_500),
    ]
    assert (order.total_cents, order.currency) == (54_500, "USD")
    assert shop.fakes.payment.payments[order.order_id].amount_cents == 54_500


@pytest.mark.parametrize(
    ("model", "body"),
    [
        (ItemQuantity, {"product_id": "sku-desk", "quantity": 1, "price_cents": 1}),
        (PlaceOrder, {**place_order().model_dump(mode="json"), "total_cents": 1}),
    ],
    ids=["item-price", "order-total"],
)
def test_refuses_client_prices_when_request_carries_them(model: type[Any], body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        model.model_validate(body)


async def test_refuses_and_stores_nothing_when_expected_total_differs_from_catalog(shop: Shop) -> None:
    command = place_order(("sku-desk", 2), expected_total_cents=45_000)

    with pytest.raises(PriceChangedError) as caught:
        await shop.service.place(command, idempotency_key="price-check")

    assert caught.value.extra == {"total_cents": 50_000, "currency": "USD"}
    assert await stored_orders(shop) == 0
    assert await place_order_sagas(shop) == 0
    assert shop.fakes.payment.methods == {}  # the card was not even tokenized
    assert shop.fakes.journal.effects == []
    assert await shop.orders.by_idempotency_key("price-check") is None


async def test_places_order_when_expected_total_matches_catalog(shop: Shop) -> None:
    placed = await shop.service.place(place_order(("sku-desk", 2), expected_total_cents=50_000))

    assert (placed.order.status, placed.order.total_cents) == (OrderStatus.COMPLETED, 50_000)


async def test_returns_same_order_and_runs_one_saga_when_idempotency_key_is_replayed(shop: Shop) -> None:
    first = await shop.service.place(place_order(("sku-desk", 1)), idempotency_key="key-1")
    # The same request again, as a client retrying after a lost answer (its card's CVV re-typed).
    retried = place_order(("sku-desk", 1), payment=card(cvv="987"))

    again = await shop.service.place(retried, idempotency_key="key-1")

    assert (first.replayed, again.replayed) == (False, True)
    assert again.order.order_id == first.order.order_id
    assert again.order.status is OrderStatus.COMPLETED
    assert await stored_orders(shop) == 1
    assert await place_order_sagas(shop) == 1
    assert len(shop.fakes.payment.methods) == 1
    assert shop.fakes.journal.of(first.order.order_id).count("payment.charged") == 1


async def test_refuses_replay_when_idempotency_key_is_reused_with_different_body(shop: Shop) -> None:
    first = await shop.service.place(place_order(("sku-desk", 1)), idempotency_key="key-2")

    with pytest.raises(IdempotencyKeyReusedError) as caught:
        await shop.service.place(place_order(("sku-desk", 2)), idempotency_key="key-2")

    assert caught.value.code == "order.idempotency_key_reused"
    assert await stored_orders(shop) == 1
    assert await place_order_sagas(shop) == 1
    assert shop.fakes.inventory.reservations[first.order.order_id].items[0].quantity == 1


def test_fingerprint_ignores_card_number_and_cvv_when_card_ends_the_same() -> None:
    ours = place_order(payment=card(CARD_NUMBER, CVV))
    other = place_order(payment=card(OTHER_CARD_SAME_ENDING, "9876"))

    assert request_fingerprint(ours) == request_fingerprint(other)


@pytest.mark.parametrize(
    "changed",
    [
        place_order(payment=card("5555555555554444")),
        place_order(("sku-desk", 2)),
        place_order(country="US"),
    ],
    ids=["card-ending", "quantity", "address"],
)
def test_fingerprint_differs_when_body_differs(changed: PlaceOrder) -> None:
    assert request_fingerprint(changed) != request_fingerprint(place_order())


def _leaves(value: object, key: str = "") -> Iterator[tuple[str, object]]:
    """Every (field name, value) pair in a stored order, however nested."""
    if isinstance(value, dict):
        for name, child in value.items():
            yield from _leaves(child, str(name))
    elif isinstance(value, list):
        for child in value:
            yield from _leaves(child, key)
    else:
        yield key, value


async def test_keeps_neither_card_number_nor_cvv_when_order_is_stored(shop: Shop) -> None:
    placed = await shop.service.place(place_order(payment=card(CARD_NUMBER, "9183")), idempotency_key="k3")

    stored = await shop.repository.get(placed.order.order_id)

    assert stored is not None
    raw = stored.model_dump(mode="json")  # every field kept, as the repositories write it
    fields = list(_leaves(raw))
    assert not {"card_number", "cvv"} & {name for name, _ in fields}
    assert not [name for name, value in fields if isinstance(value, str) and CARD_NUMBER in value]
    assert not [name for name, value in fields if value == "9183"]
    assert raw["payment"] == {"method": "CREDIT_CARD", "brand": "visa", "last4": "4242"}
    assert raw["request_hash"] == request_fingerprint(place_order(payment=card(CARD_NUMBER, "9183")))


async def test_answers_at_once_unsettled_when_wait_is_zero_while_saga_runs(shop: Shop) -> None:
    shop.fakes.inventory.reserve_gate = asyncio.Event()

    async with asyncio.timeout(2):
        placed = await shop.service.place(place_order(("sku-desk", 1)), wait_seconds=0)

    assert placed.settled is False
    assert placed.order.status is OrderStatus.PENDING
    assert placed.order.stage is not None
    assert shop.fakes.journal.effects == []

    shop.fakes.inventory.reserve_gate.set()
    state = await shop.engine.wait(placed.order.saga_id, timeout=5)

    assert state.status is SagaStatus.COMPLETED
    assert (await shop.service.get(placed.order.order_id)).status is OrderStatus.COMPLETED


async def test_returns_the_same_pending_order_when_replayed_while_its_saga_still_runs(shop: Shop) -> None:
    shop.fakes.inventory.reserve_gate = asyncio.Event()
    command = place_order(("sku-desk", 1))

    first = await shop.service.place(command, idempotency_key="retry-while-running", wait_seconds=0)
    replay = await shop.service.place(command, idempotency_key="retry-while-running", wait_seconds=0.2)

    assert (replay.order.order_id, replay.settled, replay.replayed) == (first.order.order_id, False, True)
    assert replay.order.status is OrderStatus.PENDING
    shop.fakes.inventory.reserve_gate.set()
    assert (await shop.engine.wait(first.order.saga_id, timeout=5)).status is SagaStatus.COMPLETED
    _, total = await shop.engine.find(SagaQuery(saga_type=PLACE_ORDER))
    assert total == 1


async def test_resumes_an_order_whose_request_died_before_starting_its_saga(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def die(doc: OrderRecord) -> None:
        raise asyncio.CancelledError  # the process stops between storing the order and its saga

    with monkeypatch.context() as patched:
        patched.setattr(shop.service, "_start_saga", die)
        with pytest.raises(asyncio.CancelledError):
            await shop.service.place(place_order(("sku-desk", 1)))
    (orphan,), _ = await shop.orders.find(OrderFilter(status=OrderStatus.PENDING))
    older = orphan.model_copy(update={"created_at": orphan.created_at - timedelta(minutes=10)})
    assert await shop.repository.replace(older, expected_version=orphan.version)
    lived = await shop.service.place(place_order(("sku-lamp", 1)))

    too_young = await shop.service.resume_orphans(older_than=timedelta(hours=1))
    resumed = await shop.service.resume_orphans(older_than=timedelta(minutes=1))
    await shop.engine.wait(orphan.saga_id, timeout=5)

    assert (too_young, resumed) == (0, 1)  # the order with a saga is left to the engine
    assert (await shop.order(orphan.order_id)).status is OrderStatus.COMPLETED
    assert (await shop.order(lived.order.order_id)).status is OrderStatus.COMPLETED
    assert await shop.service.resume_orphans(older_than=timedelta(minutes=1)) == 0


async def test_an_update_from_a_remembered_order_keeps_what_another_process_wrote_meanwhile(
    shop: Shop,
) -> None:
    placed = await shop.service.place(place_order(("sku-desk", 1)))
    order_id = placed.order.order_id
    elsewhere = OrderTracker(shop.repository)  # another replica: it writes the order without this one knowing

    def detail(doc: OrderRecord) -> None:
        doc.failure_detail = "noted elsewhere"

    def track(doc: OrderRecord) -> None:
        doc.tracking_number = "TRACK-2"

    await elsewhere.update(order_id, detail)
    updated = await shop.orders.update(order_id, track, allowed_from=[OrderStatus.COMPLETED])
    stored = await shop.orders.get(order_id)

    assert updated is not None and stored is not None
    assert (stored.failure_detail, stored.tracking_number) == ("noted elsewhere", "TRACK-2")
    assert updated.version == stored.version


async def test_an_update_from_a_remembered_order_respects_a_status_changed_elsewhere(shop: Shop) -> None:
    placed = await shop.service.place(place_order(("sku-desk", 1)))
    order_id = placed.order.order_id
    elsewhere = OrderTracker(shop.repository)

    def cancelling(doc: OrderRecord) -> None:
        doc.status = OrderStatus.CANCELLING

    def track(doc: OrderRecord) -> None:
        doc.tracking_number = "TRACK-2"

    await elsewhere.update(order_id, cancelling, allowed_from=[OrderStatus.COMPLETED])
    refused = await shop.orders.update(order_id, track, allowed_from=[OrderStatus.COMPLETED])
    stored = await shop.orders.get(order_id)

    assert refused is None
    assert stored is not None and stored.status is OrderStatus.CANCELLING
    assert stored.tracking_number != "TRACK-2"
