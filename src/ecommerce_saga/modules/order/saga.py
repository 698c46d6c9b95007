"""The place-order and cancel-order sagas: every participant is called through its contract.

place-order (version 3)::

    reserve_inventory   (compensatable)  compensation: release the items
    process_payment     (compensatable)  compensation: refund
    schedule_shipping   (compensatable)  compensation: cancel the shipment
    confirm_order       (pivot)          the order is COMPLETED from here on
    send_confirmation   (retriable)      ORDER_CONFIRMED; best effort, never fails the order
    on_compensated      (saga hook)      once everything is undone: mark the order FAILED, notify ORDER_FAILED

Both sagas save a success past the pivot, and a compensation's, with the next save
(`save_every_step=False`): after a crash those idempotent steps run again, and nothing they did
is ever undone. Place-order version 3 also saves its steps before the pivot with the save that
opens the pivot (`save_compensatable_steps=False`): after a crash they run again, and a saga
that compensates after one compensates all three (each compensation accepts a step that never
ran). Version 2 saved each of them on its own; it stays registered for the sagas started on it.

place-order version 1 began with a ``create_order`` step that did nothing but carry the last
compensation (what the hook does now). It stays registered so that sagas a previous release
started finish on their own steps (docs/saga-engine.md, "Changing a saga"); remove it once no
unfinished version-1 saga remains.

cancel-order (a customer cancels a COMPLETED order; once begun it always finishes)::

    begin_cancellation  (pivot)      COMPLETED -> CANCELLING
    cancel_shipping, refund_payment, release_inventory, finish_cancellation,
    send_cancellation   (retriable)  ... -> CANCELLED, ORDER_CANCELLED
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import date
from typing import TypedDict

from pydantic import BaseModel, ConfigDict

from ecommerce_saga.modules.inventory.contract import (
    InventoryService,
    ItemQuantity,
    ReleaseItems,
    ReservationStatus,
    ReserveItems,
)
from ecommerce_saga.modules.notification.contract import NotificationService, NotificationType
from ecommerce_saga.modules.order.contract import FailureReason, OrderStatus
from ecommerce_saga.modules.order.notices import notice
from ecommerce_saga.modules.order.repository import OrderRecord
from ecommerce_saga.modules.order.tracker import OrderTracker
from ecommerce_saga.modules.payment.contract import (
    ChargePayment,
    PaymentService,
    PaymentStatus,
    RefundPayment,
)
from ecommerce_saga.modules.shipping.contract import (
    Address,
    CancelShipment,
    ScheduleShipment,
    ShipmentStatus,
    ShippingMethod,
    ShippingService,
)
from ecommerce_saga.saga import (
    ErrorCode,
    ErrorInfo,
    EventKind,
    NonRetryableError,
    RetryPolicy,
    Saga,
    SagaEvent,
    Step,
    StepContext,
    StepWrites,
)
from ecommerce_saga.shared.contracts import FrozenModel

logger = logging.getLogger(__name__)

PLACE_ORDER = "place-order"
CANCEL_ORDER = "cancel-order"

FAILURE_REASONS = {
    "inventory.unavailable": FailureReason.INVENTORY_UNAVAILABLE,
    "inventory.reservation_released": FailureReason.INVENTORY_UNAVAILABLE,
    "payment.declined": FailureReason.PAYMENT_DECLINED,
    "payment.method_not_found": FailureReason.PAYMENT_DECLINED,
    "payment.voided": FailureReason.PAYMENT_DECLINED,
    "shipping.unavailable": FailureReason.SHIPPING_UNAVAILABLE,
    "shipping.cancelled": FailureReason.SHIPPING_UNAVAILABLE,
    ErrorCode.CANCELLED: FailureReason.CANCELLED_BY_OPERATOR,
    ErrorCode.DEADLINE_EXCEEDED: FailureReason.DEADLINE_EXCEEDED,
}

PARTICIPANT_RETRY = RetryPolicy(initial_interval=0.1, maximum_interval=5.0, maximum_attempts=10)
"""Participant calls: transient failures are retried (about ten seconds in all), then the saga compensates."""
BEST_EFFORT_RETRY = RetryPolicy(initial_interval=0.5, maximum_interval=60.0, maximum_attempts=30)
"""After the pivot: keep trying for several minutes; if that is not enough, park for an operator."""


# --- inputs: validated when a saga starts, stored as JSON


class OrderRef(FrozenModel):
    """An order and its customer: what every order saga's input has."""

    order_id: str
    customer_id: str


class CancelOrderInput(OrderRef):
    """The cancel-order saga's input."""


class PlaceOrderInput(OrderRef):
    """The place-order saga's input: the stored order, as the saga needs it."""

    items: list[ItemQuantity]
    total_cents: int
    currency: str
    payment_token: str
    shipping_address: Address
    shipping_method: ShippingMethod


# --- step outputs: stored as JSON under the step's name, read back by later steps and compensations


class StepOutput(BaseModel):
    """A step's output. Unknown fields are ignored: sagas in flight stored theirs with another release."""

    model_config = ConfigDict(frozen=True)


class OrderCreated(StepOutput):
    """create_order's output (place-order version 1)."""

    order_id: str


class ItemsReserved(StepOutput):
    """reserve_inventory's output."""

    reservation_id: str
    total_cents: int


class PaymentCharged(StepOutput):
    """process_payment's output."""

    payment_id: str


class ShipmentScheduled(StepOutput):
    """schedule_shipping's output."""

    shipping_id: str
    tracking_number: str | None = None
    estimated_delivery: date | None = None
    carrier: str | None = None  # absent from outputs stored by earlier releases


class OrderStatusChanged(StepOutput):
    """The output of a step that moves the order to another status."""

    status: OrderStatus


class CustomerNotified(StepOutput):
    """A notification step's output."""

    notification_id: str


class ItemsReleased(StepOutput):
    """release_inventory's output."""

    reservation_id: str
    status: ReservationStatus


class PaymentRefunded(StepOutput):
    """refund_payment's output."""

    payment_id: str
    status: PaymentStatus


class ShipmentCancelled(StepOutput):
    """cancel_shipping's output."""

    shipping_id: str
    status: ShipmentStatus


# --- the steps: persisted names and output models

CREATE_ORDER = Step("create_order", OrderCreated)
"""Place-order version 1 only."""
RESERVE_INVENTORY = Step("reserve_inventory", ItemsReserved)
PROCESS_PAYMENT = Step("process_payment", PaymentCharged)
SCHEDULE_SHIPPING = Step("schedule_shipping", ShipmentScheduled)
CONFIRM_ORDER = Step("confirm_order", OrderStatusChanged)
SEND_CONFIRMATION = Step("send_confirmation", CustomerNotified)

BEGIN_CANCELLATION = Step("begin_cancellation", OrderStatusChanged)
CANCEL_SHIPPING = Step("cancel_shipping", ShipmentCancelled)
REFUND_PAYMENT = Step("refund_payment", PaymentRefunded)
RELEASE_INVENTORY = Step("release_inventory", ItemsReleased)
FINISH_CANCELLATION = Step("finish_cancellation", OrderStatusChanged)
SEND_CANCELLATION = Step("send_cancellation", CustomerNotified)


class StepOptions(TypedDict):
    """How a step is retried and timed out."""

    retry: RetryPolicy
    timeout: float


def failure_reason(failure: ErrorInfo | None) -> FailureReason:
    """The order's failure reason for the saga failure that stopped it."""
    if failure is not None and failure.code in FAILURE_REASONS:
        return FAILURE_REASONS[failure.code]
    return FailureReason.SERVICE_UNAVAILABLE


@dataclass(frozen=True)
class OrderSagas:
    """The two order sagas, bound to the participants they call."""

    orders: OrderTracker
    inventory: InventoryService
    payment: PaymentService
    shipping: ShippingService
    notifications: NotificationService
    step_timeout: float = 10.0
    step_retry: RetryPolicy = PARTICIPANT_RETRY
    best_effort_retry: RetryPolicy = BEST_EFFORT_RETRY
    replace_write: Callable[[OrderRecord, int], object] | None = None
    """The order repository's replace as a write for the saga store (the Mongo store on the
    orders' database: `BeanieOrderRepository.replace_write`), or None. With it, confirm_order's
    replace of the order rides on the save that opens it (`SagaStep.riding`)."""

    def definitions(self) -> list[Saga[PlaceOrderInput] | Saga[CancelOrderInput]]:
        """Every saga definition: the three versions of place-order, and cancel-order."""
        return [self.place_order_v1(), self.place_order_v2(), self.place_order(), self.cancel_order()]

    def place_order(self) -> Saga[PlaceOrderInput]:
        """The place-order saga (version 3): new orders run on it.

        Its steps before the pivot are saved with the save that opens the pivot
        (`save_compensatable_steps=False`): each of their compensations accepts a step that never
        ran and keeps a late run of it from taking effect (a release's, a refund's and a
        cancelled shipment's record of the order).
        """
        return self._place_order(version=3, save_compensatable_steps=False)

    def place_order_v2(self) -> Saga[PlaceOrderInput]:
        """The place-order saga as version 2 had it (every step before the pivot saved on its
        own), for the sagas started on it."""
        return self._place_order(version=2, save_compensatable_steps=True)

    def _place_order(self, *, version: int, save_compensatable_steps: bool) -> Saga[PlaceOrderInput]:
        before, after = self._before_pivot(), self._after_pivot()
        confirm = CONFIRM_ORDER.pivot(self._confirm, **after)
        return Saga(
            PLACE_ORDER,
            [
                RESERVE_INVENTORY.does(self._reserve, **before).undoes(self._unreserve),
                PROCESS_PAYMENT.does(self._charge, **before).undoes(self._uncharge),
                SCHEDULE_SHIPPING.does(self._schedule, **before).undoes(self._unschedule),
                confirm.riding(self._confirm_writes) if self.replace_write else confirm,
                SEND_CONFIRMATION.retriable(self._notify_confirmed, **after),
            ],
            version=version,
            input=PlaceOrderInput,
            compensation_retry=self.best_effort_retry,
            on_compensated=self._fail_order,
            on_compensated_timeout=self.step_timeout,
            save_every_step=False,  # every step and compensation here is idempotent by its key
            save_compensatable_steps=save_compensatable_steps,
        )

    def place_order_v1(self) -> Saga[PlaceOrderInput]:
        """The place-order saga as version 1 had it, for the sagas started on it."""
        before, after = self._before_pivot(), self._after_pivot()
        return Saga(
            PLACE_ORDER,
            [
                CREATE_ORDER.does(self._create_order, **before).undoes(self._fail_order_v1),
                RESERVE_INVENTORY.does(self._reserve, **before).undoes(self._unreserve),
                PROCESS_PAYMENT.does(self._charge, **before).undoes(self._uncharge),
                SCHEDULE_SHIPPING.does(self._schedule, **before).undoes(self._unschedule),
                CONFIRM_ORDER.pivot(self._confirm, **after),
                SEND_CONFIRMATION.retriable(self._notify_confirmed, **after),
            ],
            version=1,
            input=PlaceOrderInput,
            compensation_retry=self.best_effort_retry,
        )

    def cancel_order(self) -> Saga[CancelOrderInput]:
        """The cancel-order saga."""
        after = self._after_pivot()
        begin = BEGIN_CANCELLATION.pivot(self._begin_cancellation, **after)
        return Saga(
            CANCEL_ORDER,
            [
                begin.riding(self._begin_cancellation_writes) if self.replace_write else begin,
                CANCEL_SHIPPING.retriable(self._cancel_shipment, **after),
                REFUND_PAYMENT.retriable(self._refund_payment, **after),
                RELEASE_INVENTORY.retriable(self._release_inventory, **after),
                FINISH_CANCELLATION.retriable(self._finish_cancellation, **after),
                SEND_CANCELLATION.retriable(self._notify_cancelled, **after),
            ],
            input=CancelOrderInput,
            compensation_retry=self.best_effort_retry,
            save_every_step=False,
        )

    def _before_pivot(self) -> StepOptions:
        return {"retry": self.step_retry, "timeout": self.step_timeout}

    def _after_pivot(self) -> StepOptions:
        return {"retry": self.best_effort_retry, "timeout": self.step_timeout}

    # --- place-order actions and compensations

    async def _create_order(self, ctx: StepContext[PlaceOrderInput]) -> OrderCreated:
        # Version 1 only: the order record is written before its saga starts; this step was the
        # anchor whose compensation marked the order FAILED, whatever failed later.
        return OrderCreated(order_id=ctx.input.order_id)

    async def _fail_order_v1(self, ctx: StepContext[PlaceOrderInput], _: OrderCreated | None) -> None:
        await self._fail_order(ctx)

    async def _fail_order(self, ctx: StepContext[PlaceOrderInput]) -> None:
        """The saga failed and everything is undone: the order is FAILED and its customer told."""
        reason = failure_reason(ctx.failure)
        detail = ctx.failure.message if ctx.failure else "the order could not be completed"

        def fail(doc: OrderRecord) -> None:
            doc.status, doc.failure_reason, doc.failure_detail = OrderStatus.FAILED, reason, detail

        order_id = ctx.input.order_id
        await self.orders.update(
            order_id, fail, allowed_from=[OrderStatus.PENDING, OrderStatus.REQUIRES_ATTENTION]
        )
        await self._notify(NotificationType.ORDER_FAILED, ctx.input, ctx.idempotency_key, ctx.attempt)

    async def _reserve(self, ctx: StepContext[PlaceOrderInput]) -> ItemsReserved:
        command = ReserveItems(
            order_id=ctx.input.order_id, items=ctx.input.items, idempotency_key=ctx.idempotency_key
        )
        reservation = await self.inventory.reserve(command)
        return ItemsReserved(reservation_id=reservation.reservation_id, total_cents=reservation.total_cents)

    async def _unreserve(self, ctx: StepContext[PlaceOrderInput], _: ItemsReserved | None) -> None:
        await self._release(ctx.input.order_id, ctx.idempotency_key)

    async def _charge(self, ctx: StepContext[PlaceOrderInput]) -> PaymentCharged:
        payment = await self.payment.charge(
            ChargePayment(
                order_id=ctx.input.order_id,
                customer_id=ctx.input.customer_id,
                amount_cents=ctx.input.total_cents,
                currency=ctx.input.currency,
                payment_token=ctx.input.payment_token,
                idempotency_key=ctx.idempotency_key,
            )
        )
        return PaymentCharged(payment_id=payment.payment_id)

    async def _uncharge(self, ctx: StepContext[PlaceOrderInput], _: PaymentCharged | None) -> None:
        await self._refund(ctx.input.order_id, ctx.idempotency_key)

    async def _schedule(self, ctx: StepContext[PlaceOrderInput]) -> ShipmentScheduled:
        shipment = await self.shipping.schedule(
            ScheduleShipment(
                order_id=ctx.input.order_id,
                customer_id=ctx.input.customer_id,
                address=ctx.input.shipping_address,
                method=ctx.input.shipping_method,
                idempotency_key=ctx.idempotency_key,
            )
        )
        return ShipmentScheduled(
            shipping_id=shipment.shipping_id,
            tracking_number=shipment.tracking_number,
            estimated_delivery=shipment.estimated_delivery,
            carrier=shipment.carrier or None,
        )

    async def _unschedule(self, ctx: StepContext[PlaceOrderInput], _: ShipmentScheduled | None) -> None:
        await self._cancel_shipping(ctx.input.order_id, ctx.idempotency_key)

    async def _confirm(self, ctx: StepContext[PlaceOrderInput]) -> OrderStatusChanged:
        await self.orders.update(ctx.input.order_id, _completion(ctx), allowed_from=_CONFIRMABLE)
        return OrderStatusChanged(status=OrderStatus.COMPLETED)

    def _confirm_writes(self, ctx: StepContext[PlaceOrderInput]) -> StepWrites[OrderStatusChanged] | None:
        """`_confirm`'s replace of the order as a write, if this process remembers the order (it
        placed it, or read it since): no read is made here. If the write is refused (the order
        changed meanwhile), `_confirm` runs and reads the order."""
        return self._order_writes(ctx.input.order_id, _completion(ctx), _CONFIRMABLE, OrderStatus.COMPLETED)

    def _order_writes(
        self,
        order_id: str,
        change: Callable[[OrderRecord], None],
        allowed_from: Collection[OrderStatus],
        status: OrderStatus,
    ) -> StepWrites[OrderStatusChanged] | None:
        """A step's change of the order as a replace for the saga store to make, built from the
        order this process remembers in a status of `allowed_from` (None if it does not)."""
        changed = self.orders.changed(order_id, change, allowed_from=allowed_from)
        if changed is None or self.replace_write is None:
            return None
        order, expected = changed
        return StepWrites(
            [self.replace_write(order, expected)],
            OrderStatusChanged(status=status),
            made=lambda: self.orders.stored(order),
        )

    async def _notify_confirmed(self, ctx: StepContext[PlaceOrderInput]) -> CustomerNotified:
        carrier = ctx.output_of(SCHEDULE_SHIPPING).carrier
        return await self._notify(
            NotificationType.ORDER_CONFIRMED, ctx.input, ctx.idempotency_key, ctx.attempt, carrier
        )

    # --- cancel-order actions

    async def _begin_cancellation(self, ctx: StepContext[CancelOrderInput]) -> OrderStatusChanged:
        order_id = ctx.input.order_id
        updated = await self.orders.update(order_id, _cancelling(ctx), allowed_from=[OrderStatus.COMPLETED])
        if updated is None:
            current = await self.orders.get(order_id)
            if current is None or current.cancel_saga_id != ctx.saga_id:
                raise NonRetryableError(f"order {order_id} is not COMPLETED", code="order.not_cancellable")
        return OrderStatusChanged(status=OrderStatus.CANCELLING)

    def _begin_cancellation_writes(
        self, ctx: StepContext[CancelOrderInput]
    ) -> StepWrites[OrderStatusChanged] | None:
        """`_begin_cancellation`'s replace of the order as a write, to ride on the cancel saga's
        insert, if this process remembers the order COMPLETED (`cancel` has just read it)."""
        return self._order_writes(
            ctx.input.order_id, _cancelling(ctx), [OrderStatus.COMPLETED], OrderStatus.CANCELLING
        )

    async def _cancel_shipment(self, ctx: StepContext[CancelOrderInput]) -> ShipmentCancelled:
        return await self._cancel_shipping(ctx.input.order_id, ctx.idempotency_key)

    async def _refund_payment(self, ctx: StepContext[CancelOrderInput]) -> PaymentRefunded:
        return await self._refund(ctx.input.order_id, ctx.idempotency_key)

    async def _release_inventory(self, ctx: StepContext[CancelOrderInput]) -> ItemsReleased:
        return await self._release(ctx.input.order_id, ctx.idempotency_key)

    async def _finish_cancellation(self, ctx: StepContext[CancelOrderInput]) -> OrderStatusChanged:
        def cancelled(doc: OrderRecord) -> None:
            doc.status = OrderStatus.CANCELLED

        await self.orders.update(ctx.input.order_id, cancelled, allowed_from=[OrderStatus.CANCELLING])
        return OrderStatusChanged(status=OrderStatus.CANCELLED)

    async def _notify_cancelled(self, ctx: StepContext[CancelOrderInput]) -> CustomerNotified:
        return await self._notify(
            NotificationType.ORDER_CANCELLED, ctx.input, ctx.idempotency_key, ctx.attempt
        )

    # --- participant calls shared by both sagas

    async def _release(self, order_id: str, idempotency_key: str) -> ItemsReleased:
        released = await self.inventory.release(
            ReleaseItems(order_id=order_id, idempotency_key=idempotency_key)
        )
        return ItemsReleased(reservation_id=released.reservation_id, status=released.status)

    async def _refund(self, order_id: str, idempotency_key: str) -> PaymentRefunded:
        refunded = await self.payment.refund(
            RefundPayment(order_id=order_id, idempotency_key=idempotency_key)
        )
        return PaymentRefunded(payment_id=refunded.payment_id, status=refunded.status)

    async def _cancel_shipping(self, order_id: str, idempotency_key: str) -> ShipmentCancelled:
        cancelled = await self.shipping.cancel(
            CancelShipment(order_id=order_id, idempotency_key=idempotency_key)
        )
        return ShipmentCancelled(shipping_id=cancelled.shipping_id, status=cancelled.status)

    async def _notify(
        self, kind: NotificationType, order: OrderRef, key: str, attempt: int, carrier: str | None = None
    ) -> CustomerNotified:
        notification = await self.notifications.send(
            await notice(
                self.orders,
                kind,
                order.order_id,
                order.customer_id,
                key=key,
                attempt=attempt,
                carrier=carrier,
            )
        )
        return CustomerNotified(notification_id=notification.notification_id)


_CONFIRMABLE = (OrderStatus.PENDING, OrderStatus.REQUIRES_ATTENTION)
"""The statuses confirm_order completes an order from."""


def _cancelling(ctx: StepContext[CancelOrderInput]) -> Callable[[OrderRecord], None]:
    """begin_cancellation's change of the order: CANCELLING, by this cancel saga."""

    def cancelling(doc: OrderRecord) -> None:
        doc.status = OrderStatus.CANCELLING
        doc.cancel_saga_id = ctx.saga_id

    return cancelling


def _completion(ctx: StepContext[PlaceOrderInput]) -> Callable[[OrderRecord], None]:
    """confirm_order's change of the order: COMPLETED, with its payment and shipment."""
    shipment = ctx.output_of(SCHEDULE_SHIPPING)
    payment = ctx.output_of(PROCESS_PAYMENT)

    def complete(doc: OrderRecord) -> None:
        doc.status = OrderStatus.COMPLETED
        doc.payment_id = payment.payment_id
        doc.shipping_id = shipment.shipping_id
        doc.tracking_number = shipment.tracking_number
        doc.estimated_delivery = shipment.estimated_delivery

    return complete


class ParkedOrderMarker:
    """A saga observer: when a place-order saga is parked, its order shows REQUIRES_ATTENTION.

    The mark is written in the background (observers must not block the engine). If it is lost
    in a crash, the order view still derives the status from the parked saga.
    """

    def __init__(self, orders: OrderTracker) -> None:
        self._orders = orders
        self._pending: set[asyncio.Task[object]] = set()

    def notify(self, event: SagaEvent) -> None:
        """Mark the order of a parked place-order saga."""
        if (
            event.kind is not EventKind.SAGA_PARKED
            or event.saga_type != PLACE_ORDER
            or not event.correlation_id
        ):
            return
        task: asyncio.Task[object] = asyncio.get_running_loop().create_task(self._mark(event.correlation_id))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _mark(self, order_id: str) -> object:
        def attention(doc: OrderRecord) -> None:
            doc.status = OrderStatus.REQUIRES_ATTENTION

        try:
            return await self._orders.update(order_id, attention, allowed_from=[OrderStatus.PENDING])
        except Exception:
            logger.exception("could not mark a parked order", extra={"order_id": order_id})
            return None
