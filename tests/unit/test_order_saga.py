"""The place-order and cancel-order sagas on the in-memory store, with fake participants.

Orders are placed through `LocalOrderService` (so the saga gets the input it gets in production)
and kept by the real `OrderTracker` on the in-memory order repository (no database). Outcomes are
read from the order, from each fake's state, and from the journal of effects the fakes share,
which shows what was done and undone across participants, and in which order.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from datetime import date
from typing import Any

import pytest

from ecommerce_saga.modules.inventory.contract import ReservationStatus
from ecommerce_saga.modules.notification.contract import NotificationType
from ecommerce_saga.modules.order.contract import (
    FailureReason,
    OrderNotCancellableError,
    OrderStatus,
    PlaceOrder,
)
from ecommerce_saga.modules.order.repository import InMemoryOrderRepository, OrderRecord
from ecommerce_saga.modules.order.saga import (
    BEST_EFFORT_RETRY,
    CANCEL_ORDER,
    CONFIRM_ORDER,
    CREATE_ORDER,
    PLACE_ORDER,
    PROCESS_PAYMENT,
    RESERVE_INVENTORY,
    SCHEDULE_SHIPPING,
    SEND_CONFIRMATION,
    OrderSagas,
    PlaceOrderInput,
    ShipmentScheduled,
)
from ecommerce_saga.modules.order.service import LocalOrderService
from ecommerce_saga.modules.order.tracker import OrderTracker
from ecommerce_saga.modules.payment.contract import PaymentStatus
from ecommerce_saga.modules.shipping.contract import ShipmentStatus
from ecommerce_saga.saga import (
    ON_COMPENSATED,
    AttemptStatus,
    InvalidSagaInputError,
    Phase,
    Saga,
    SagaEngine,
    SagaNotFoundError,
    SagaState,
    SagaStatus,
    StepKind,
)
from tests.fakes.shop import FAST_RETRY, LONDON, FakeParticipants, Shop, open_shop, place_order

PLACE_ORDER_STEPS = [RESERVE_INVENTORY, PROCESS_PAYMENT, SCHEDULE_SHIPPING, CONFIRM_ORDER, SEND_CONFIRMATION]
PLACE_ORDER_V1_STEPS = [CREATE_ORDER, *PLACE_ORDER_STEPS]


def place_order_definition(version: int = 3) -> Saga[PlaceOrderInput]:
    fakes = FakeParticipants.create()
    sagas = OrderSagas(
        OrderTracker(InMemoryOrderRepository()),
        fakes.inventory,
        fakes.payment,
        fakes.shipping,
        fakes.notifications,
    )
    return {1: sagas.place_order_v1, 2: sagas.place_order_v2, 3: sagas.place_order}[version]()


PLACED = ["inventory.reserved", "payment.charged", "shipping.scheduled"]


@pytest.fixture
async def shop() -> AsyncIterator[Shop]:
    async with open_shop() as shop:
        yield shop


async def place(shop: Shop, command: PlaceOrder) -> tuple[OrderRecord, SagaState]:
    """Place the order and wait until its saga has ended (or parked)."""
    placed = await shop.service.place(command, wait_seconds=0)
    state = await shop.engine.wait(placed.order.saga_id, timeout=5)
    return await shop.order(placed.order.order_id), state


async def saga_when(shop: Shop, saga_id: str, predicate: Callable[[SagaState], bool]) -> SagaState:
    """The saga's state once `predicate` holds (polled, for at most five seconds)."""
    async with asyncio.timeout(5):
        while not predicate(state := await shop.engine.get(saga_id)):
            await asyncio.sleep(0.01)
    return state


def succeeded(state: SagaState, phase: Phase) -> list[str]:
    """The steps whose action (or compensation) succeeded, in the order they did."""
    return [e.step for e in state.history if e.phase is phase and e.status is AttemptStatus.SUCCEEDED]


def attempts(state: SagaState, step: str) -> list[tuple[AttemptStatus, str | None]]:
    """Each attempt of `step`'s action: its outcome and error code."""
    return [
        (e.status, e.error.code if e.error else None)
        for e in state.history
        if e.step == step and e.phase is Phase.ACTION
    ]


def assert_undone_in_reverse(state: SagaState, shop: Shop) -> None:
    """Every step that succeeded and can be undone was compensated once, in reverse order; then
    the saga's on_compensated hook ran, once."""
    definition = shop.engine.definition_for(state)
    assert definition is not None
    undoable = {s.name for s in definition.steps if s.compensation is not None}
    done = [step for step in succeeded(state, Phase.ACTION) if step in undoable]
    assert state.status is SagaStatus.COMPENSATED
    assert succeeded(state, Phase.COMPENSATION) == [*reversed(done), ON_COMPENSATED]


async def test_completes_order_with_payment_and_shipment_when_every_participant_succeeds(shop: Shop) -> None:
    doc, state = await place(shop, place_order(("sku-desk", 2), ("sku-lamp", 1)))

    payment = shop.fakes.payment.payments[doc.order_id]
    shipment = shop.fakes.shipping.shipments[doc.order_id]
    assert state.status is SagaStatus.COMPLETED
    assert succeeded(state, Phase.COMPENSATION) == []
    assert doc.status is OrderStatus.COMPLETED
    assert (doc.payment_id, doc.shipping_id) == (payment.payment_id, shipment.shipping_id)
    assert (doc.tracking_number, doc.estimated_delivery) == (
        shipment.tracking_number,
        shipment.estimated_delivery,
    )
    assert (payment.status, payment.amount_cents, payment.last4) == (PaymentStatus.COMPLETED, 54_500, "4242")
    assert (shipment.status, shipment.address) == (ShipmentStatus.SCHEDULED, LONDON)
    assert shop.fakes.inventory.reservations[doc.order_id].status is ReservationStatus.RESERVED
    assert [shop.fakes.inventory.products[p].available for p in ("sku-desk", "sku-lamp")] == [3, 4]
    assert shop.fakes.notifications.sent_to(doc.order_id) == [NotificationType.ORDER_CONFIRMED]
    assert shop.fakes.journal.of(doc.order_id) == [*PLACED, "notification.ORDER_CONFIRMED"]


async def test_fails_order_without_undoing_anything_when_items_are_out_of_stock(shop: Shop) -> None:
    doc, state = await place(shop, place_order(("sku-lamp", 1), ("sku-desk", 6)))

    assert (doc.status, doc.failure_reason) == (OrderStatus.FAILED, FailureReason.INVENTORY_UNAVAILABLE)
    assert_undone_in_reverse(state, shop)
    assert succeeded(state, Phase.COMPENSATION) == ["on_compensated"]
    assert shop.fakes.journal.of(doc.order_id) == ["notification.ORDER_FAILED"]
    assert shop.fakes.inventory.reservations[doc.order_id].status is ReservationStatus.REJECTED
    assert [shop.fakes.inventory.products[p].reserved for p in ("sku-desk", "sku-lamp")] == [0, 0]
    assert doc.order_id not in shop.fakes.payment.payments
    assert doc.order_id not in shop.fakes.shipping.shipments
    failed = shop.fakes.notifications.notifications[(doc.order_id, NotificationType.ORDER_FAILED)]
    assert failed.details == {"reason": "INVENTORY_UNAVAILABLE"}


async def test_releases_items_and_fails_order_when_payment_is_declined(shop: Shop) -> None:
    shop.fakes.payment.decline_charges("insufficient_funds")

    doc, state = await place(shop, place_order(("sku-desk", 2)))

    assert (doc.status, doc.failure_reason) == (OrderStatus.FAILED, FailureReason.PAYMENT_DECLINED)
    assert doc.failure_detail is not None and "insufficient_funds" in doc.failure_detail
    assert_undone_in_reverse(state, shop)
    assert shop.fakes.journal.of(doc.order_id) == [
        "inventory.reserved",
        "inventory.released",
        "notification.ORDER_FAILED",
    ]
    assert shop.fakes.inventory.products["sku-desk"].available == 5
    assert shop.fakes.inventory.reservations[doc.order_id].status is ReservationStatus.RELEASED
    payment = shop.fakes.payment.payments[doc.order_id]
    assert (payment.status, payment.decline_code) == (PaymentStatus.DECLINED, "insufficient_funds")
    assert doc.order_id not in shop.fakes.shipping.shipments


async def test_refunds_then_releases_when_shipping_is_unavailable(shop: Shop) -> None:
    doc, state = await place(shop, place_order(("sku-desk", 1), country="BR"))

    assert (doc.status, doc.failure_reason) == (OrderStatus.FAILED, FailureReason.SHIPPING_UNAVAILABLE)
    assert_undone_in_reverse(state, shop)
    assert succeeded(state, Phase.COMPENSATION) == ["process_payment", "reserve_inventory", "on_compensated"]
    assert shop.fakes.journal.of(doc.order_id) == [
        "inventory.reserved",
        "payment.charged",
        "payment.refunded",
        "inventory.released",
        "notification.ORDER_FAILED",
    ]
    assert shop.fakes.payment.payments[doc.order_id].status is PaymentStatus.REFUNDED
    assert shop.fakes.inventory.products["sku-desk"].available == 5
    assert doc.order_id not in shop.fakes.shipping.shipments


@pytest.mark.parametrize(
    ("participant", "step"),
    [("inventory", "reserve_inventory"), ("payment", "process_payment"), ("shipping", "schedule_shipping")],
)
async def test_completes_order_with_retries_in_history_when_participant_is_unavailable_twice(
    shop: Shop, participant: str, step: str
) -> None:
    getattr(shop.fakes, participant).make_unavailable(times=2)

    doc, state = await place(shop, place_order(("sku-desk", 1)))

    assert (state.status, doc.status) == (SagaStatus.COMPLETED, OrderStatus.COMPLETED)
    assert attempts(state, step) == [
        (AttemptStatus.FAILED, "service_unavailable"),
        (AttemptStatus.FAILED, "service_unavailable"),
        (AttemptStatus.SUCCEEDED, None),
    ]
    history = (await shop.service.get(doc.order_id)).history
    assert [(h.attempt, h.status, h.error_code) for h in history if h.step == step] == [
        (1, "FAILED", "service_unavailable"),
        (2, "FAILED", "service_unavailable"),
        (3, "SUCCEEDED", None),
    ]
    assert shop.fakes.journal.of(doc.order_id) == [*PLACED, "notification.ORDER_CONFIRMED"]


async def test_completes_order_and_keeps_retrying_confirmation_when_notifications_are_down(
    shop: Shop,
) -> None:
    send_confirmation = shop.engine.definitions[PLACE_ORDER].steps[-1]
    assert (send_confirmation.name, send_confirmation.kind) == ("send_confirmation", StepKind.RETRIABLE)
    assert send_confirmation.retry == BEST_EFFORT_RETRY
    shop.fakes.notifications.make_unavailable()
    placed = await shop.service.place(place_order(("sku-desk", 1)), wait_seconds=0)
    order_id, saga_id = placed.order.order_id, placed.order.saga_id

    state = await saga_when(shop, saga_id, lambda s: len(attempts(s, "send_confirmation")) >= 2)

    *failed, retry = attempts(state, "send_confirmation")
    assert failed == [(AttemptStatus.FAILED, "service_unavailable")] * len(failed)
    assert retry == (AttemptStatus.STARTED, None)
    assert state.status is SagaStatus.RUNNING
    assert succeeded(state, Phase.COMPENSATION) == []
    assert (await shop.service.get(order_id)).status is OrderStatus.COMPLETED
    assert shop.fakes.journal.of(order_id) == PLACED

    shop.fakes.notifications.make_available()
    state = await shop.engine.wait(saga_id, timeout=5)

    assert state.status is SagaStatus.COMPLETED
    assert attempts(state, "send_confirmation")[-1] == (AttemptStatus.SUCCEEDED, None)
    assert shop.fakes.journal.of(order_id) == [*PLACED, "notification.ORDER_CONFIRMED"]


async def test_parks_saga_without_failing_order_when_confirmation_retries_run_out() -> None:
    # The definition's own budget (BEST_EFFORT_RETRY) lasts minutes; the same saga with three
    # attempts shows what happens when it runs out.
    def three_attempts(saga: Saga) -> Saga:
        steps = [
            dataclasses.replace(s, retry=FAST_RETRY) if s.name == "send_confirmation" else s
            for s in saga.steps
        ]
        return dataclasses.replace(saga, steps=steps)

    async with open_shop(adjust=three_attempts) as shop:
        shop.fakes.notifications.make_unavailable()

        doc, state = await place(shop, place_order(("sku-desk", 1)))

        assert (state.status, state.parked_from) == (SagaStatus.REQUIRES_ATTENTION, SagaStatus.RUNNING)
        assert [a for a, _ in attempts(state, "send_confirmation")] == [AttemptStatus.FAILED] * 4
        assert succeeded(state, Phase.COMPENSATION) == []
        assert doc.status is OrderStatus.COMPLETED
        assert (await shop.service.get(doc.order_id)).status is OrderStatus.COMPLETED
        assert shop.fakes.payment.payments[doc.order_id].status is PaymentStatus.COMPLETED
        assert shop.fakes.journal.of(doc.order_id) == PLACED


async def test_cancels_shipping_refunds_and_releases_when_completed_order_is_cancelled(shop: Shop) -> None:
    doc, _ = await place(shop, place_order(("sku-desk", 2)))
    assert doc.status is OrderStatus.COMPLETED

    cancelled = await shop.service.cancel(doc.order_id, wait_seconds=5)
    state = await shop.engine.wait(f"{doc.order_id}-cancel", timeout=5)

    assert (cancelled.settled, cancelled.order.status) == (True, OrderStatus.CANCELLED)
    assert state.status is SagaStatus.COMPLETED
    assert (await shop.order(doc.order_id)).cancel_saga_id == state.saga_id
    assert shop.fakes.journal.of(doc.order_id) == [
        *PLACED,
        "notification.ORDER_CONFIRMED",
        "shipping.cancelled",
        "payment.refunded",
        "inventory.released",
        "notification.ORDER_CANCELLED",
    ]
    assert shop.fakes.shipping.shipments[doc.order_id].status is ShipmentStatus.CANCELLED
    assert shop.fakes.payment.payments[doc.order_id].status is PaymentStatus.REFUNDED
    assert shop.fakes.inventory.products["sku-desk"].available == 5
    assert shop.fakes.notifications.sent_to(doc.order_id) == [
        NotificationType.ORDER_CONFIRMED,
        NotificationType.ORDER_CANCELLED,
    ]


async def test_refuses_cancellation_and_touches_nothing_when_order_failed(shop: Shop) -> None:
    shop.fakes.payment.decline_charges()
    doc, _ = await place(shop, place_order(("sku-desk", 1)))
    before = shop.fakes.journal.of(doc.order_id)

    with pytest.raises(OrderNotCancellableError):
        await shop.service.cancel(doc.order_id)
    with pytest.raises(SagaNotFoundError):
        await shop.engine.get(f"{doc.order_id}-cancel")
    # The saga guards itself too: started for an order that is not COMPLETED (a stale or forged
    # request), it stops at its pivot and does nothing.
    await shop.engine.start(
        CANCEL_ORDER, {"order_id": doc.order_id, "customer_id": doc.customer_id}, saga_id="c-1"
    )
    state = await shop.engine.wait("c-1", timeout=5)

    assert state.status is SagaStatus.COMPENSATED
    assert attempts(state, "begin_cancellation") == [(AttemptStatus.FAILED, "order.not_cancellable")]
    assert [e.step for e in state.history] == ["begin_cancellation"]
    assert (await shop.order(doc.order_id)).status is OrderStatus.FAILED
    assert (
        shop.fakes.journal.of(doc.order_id)
        == before
        == ["inventory.reserved", "inventory.released", "notification.ORDER_FAILED"]
    )
    assert shop.fakes.payment.payments[doc.order_id].status is PaymentStatus.DECLINED


async def test_marks_order_for_attention_then_fails_it_when_a_parked_compensation_is_resumed() -> None:
    def short_compensation_budget(saga: Saga) -> Saga:
        return dataclasses.replace(saga, compensation_retry=FAST_RETRY)

    async with open_shop(adjust=short_compensation_budget) as shop:
        shop.fakes.payment.make_unavailable()  # the charge, then its refund, keep failing

        doc, state = await place(shop, place_order(("sku-desk", 1)))
        assert (state.status, state.parked_from) == (SagaStatus.REQUIRES_ATTENTION, SagaStatus.COMPENSATING)
        async with asyncio.timeout(5):
            while (doc := await shop.order(doc.order_id)).status is not OrderStatus.REQUIRES_ATTENTION:
                await asyncio.sleep(0.01)
        assert shop.fakes.inventory.products["sku-desk"].reserved == 1

        shop.fakes.payment.make_available()
        await shop.engine.resume(doc.order_id, actor="ops@example.com", reason="payment gateway is back")
        state = await shop.engine.wait(doc.order_id, timeout=5)

        assert state.status is SagaStatus.COMPENSATED
        doc = await shop.order(doc.order_id)
        assert (doc.status, doc.failure_reason) == (OrderStatus.FAILED, FailureReason.SERVICE_UNAVAILABLE)
        assert shop.fakes.inventory.products["sku-desk"].reserved == 0
        assert [(e.actor, e.reason) for e in state.history if e.phase is Phase.OPERATOR] == [
            ("ops@example.com", "payment gateway is back")
        ]


def test_reads_inputs_and_outputs_as_the_untyped_sagas_stored_them() -> None:
    # what the place-order saga stored before it was typed (order/service.py built a dict)
    old_input = {
        "order_id": "ord_1",
        "customer_id": "alice",
        "items": [{"product_id": "sku-desk", "quantity": 2}],
        "total_cents": 5000,
        "currency": "USD",
        "payment_token": "tok_1",
        "shipping_address": LONDON.model_dump(mode="json"),
        "shipping_method": "STANDARD",
    }
    old_outputs = {
        "create_order": {"order_id": "ord_1"},
        "reserve_inventory": {"reservation_id": "res_1", "total_cents": 5000},
        "process_payment": {"payment_id": "pay_1"},
        "schedule_shipping": {
            "shipping_id": "shp_1",
            "tracking_number": "T1",
            "estimated_delivery": "2025-03-04",
        },
        "confirm_order": {"status": "COMPLETED"},
        "send_confirmation": {"notification_id": "ntf_1"},
    }
    definition = place_order_definition(version=1)  # what those sagas run on

    typed_input = definition.step_input(old_input)
    outputs = {step.name: step.output.model_validate(old_outputs[step.name]) for step in PLACE_ORDER_V1_STEPS}

    assert typed_input.items[0].quantity == 2
    assert typed_input.shipping_address == LONDON
    assert definition.stored_input(typed_input) == old_input  # stored the same way as before
    assert outputs["schedule_shipping"] == ShipmentScheduled(
        shipping_id="shp_1", tracking_number="T1", estimated_delivery=date(2025, 3, 4)
    )
    assert [step.name for step in definition.steps] == [step.name for step in PLACE_ORDER_V1_STEPS]
    # fields added since (ShipmentScheduled.carrier) are None for old outputs, and ignored by old readers
    assert {
        name: out.model_dump(mode="json", exclude_none=True) for name, out in outputs.items()
    } == old_outputs


def test_refuses_to_start_a_place_order_saga_when_its_input_is_invalid() -> None:
    with pytest.raises(InvalidSagaInputError, match="total_cents"):
        place_order_definition().stored_input({"order_id": "ord_1", "customer_id": "alice"})


async def test_finishes_a_version_1_saga_on_version_1_and_places_new_orders_on_version_3(shop: Shop) -> None:
    # A previous release (place-order version 1 only) took an order and was stopped with its saga
    # in flight; this release has every version.
    old_sagas = OrderSagas(
        shop.orders, shop.fakes.inventory, shop.fakes.payment, shop.fakes.shipping, shop.fakes.notifications
    )
    old = SagaEngine(shop.engine.store, [old_sagas.place_order_v1()], observers=[])
    old_service = LocalOrderService(shop.orders, old, shop.fakes.inventory, shop.fakes.payment)
    shop.fakes.payment.decline_charges()
    old_order = (await old_service.place(place_order(("sku-desk", 1)), wait_seconds=0)).order
    await old.stop(grace=5)  # hands the saga over before it finished
    assert (await shop.engine.get(old_order.saga_id)).status is SagaStatus.RUNNING

    assert await shop.engine.recover_once() == 1
    resumed = await shop.engine.wait(old_order.saga_id, timeout=5)
    shop.fakes.payment.decline_code = None
    new_doc, new = await place(shop, place_order(("sku-desk", 1)))

    assert resumed.definition_version == 1
    assert resumed.status is SagaStatus.COMPENSATED
    assert succeeded(resumed, Phase.ACTION) == ["create_order", "reserve_inventory"]
    assert succeeded(resumed, Phase.COMPENSATION) == ["reserve_inventory", "create_order"]
    failed = await shop.order(old_order.order_id)
    assert (failed.status, failed.failure_reason) == (OrderStatus.FAILED, FailureReason.PAYMENT_DECLINED)
    assert shop.fakes.journal.of(old_order.order_id)[-1] == "notification.ORDER_FAILED"
    assert new.definition_version == 3
    assert new.status is SagaStatus.COMPLETED
    assert succeeded(new, Phase.ACTION) == [step.name for step in PLACE_ORDER_STEPS]
    assert new_doc.status is OrderStatus.COMPLETED


def test_each_place_order_version_has_its_own_fingerprint_and_the_older_ones_keep_theirs() -> None:
    v1, v2, v3 = (place_order_definition(version=v) for v in (1, 2, 3))

    assert (v1.version, v2.version, v3.version) == (1, 2, 3)
    assert len({v1.fingerprint, v2.fingerprint, v3.fingerprint}) == 3
    assert v1.fingerprint == "530dcf0147d1264a"  # what version-1 sagas in flight recorded
    assert v2.fingerprint == "c6207cf772556f44"  # what version-2 sagas in flight recorded
    # version 3 has version 2's steps; it saves those before the pivot with the pivot's opening
    assert [(s.name, s.kind) for s in v3.steps] == [(s.name, s.kind) for s in v2.steps]
    assert (v2.save_compensatable_steps, v3.save_compensatable_steps) == (True, False)


async def test_undoes_all_three_steps_when_an_operator_cancels_while_the_stored_saga_lags() -> None:
    # Version 3 saves reserve's and charge's successes with the save that opens confirm_order, so
    # while schedule_shipping runs the store still shows reserve_inventory STARTED. A cancel from
    # there must still release the items, refund the charge and leave the shipment cancelled.
    entered = asyncio.Event()

    def held_scheduling(saga: Saga) -> Saga:
        def hold(step: Any) -> Any:
            async def held(ctx: Any) -> Any:
                entered.set()
                await asyncio.Event().wait()  # until the cancel stops it

            return dataclasses.replace(step, action=held, timeout=30)

        steps = [hold(s) if s.name == SCHEDULE_SHIPPING.name else s for s in saga.steps]
        return dataclasses.replace(saga, steps=steps)

    async with open_shop(adjust=held_scheduling) as shop:
        placed = await shop.service.place(place_order(("sku-desk", 1)), wait_seconds=0)
        await asyncio.wait_for(entered.wait(), 5)
        stored = await shop.engine.store.get(placed.order.saga_id)
        assert stored is not None

        await shop.engine.cancel(placed.order.saga_id, actor="operator", reason="customer called")
        state = await shop.engine.wait(placed.order.saga_id, timeout=5)
        doc = await shop.order(placed.order.order_id)

    assert (stored.definition_version, stored.current_step) == (3, 0)
    undone = [SCHEDULE_SHIPPING.name, PROCESS_PAYMENT.name, RESERVE_INVENTORY.name, ON_COMPENSATED]
    assert state.compensation_plan == undone
    assert state.status is SagaStatus.COMPENSATED
    assert doc.status is OrderStatus.FAILED
    assert shop.fakes.inventory.products["sku-desk"].available == 5
    assert shop.fakes.payment.payments[doc.order_id].status is PaymentStatus.REFUNDED
    assert shop.fakes.shipping.shipments[doc.order_id].status is ShipmentStatus.CANCELLED  # a tombstone
