"""The place-order and cancel-order sagas: every participant is called through its contract.

place-order::

    create_order        (compensatable)  compensation: mark the order FAILED, notify ORDER_FAILED
    reserve_inventory   (compensatable)  compensation: release the items
    process_payment     (compensatable)  compensation: refund
    schedule_shipping   (compensatable)  compensation: cancel the shipment
    confirm_order       (pivot)          the order is COMPLETED from here on
    send_confirmation   (retriable)      ORDER_CONFIRMED; best effort, never fails the order

cancel-order (a customer cancels a COMPLETED order; once begun it always finishes)::

    begin_cancellation  (pivot)      COMPLETED -> CANCELLING
    cancel_shipping, refund_payment, release_inventory, finish_cancellation,
    send_cancellation   (retriable)  ... -> CANCELLED, ORDER_CANCELLED
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import date
from typing import Any

from ecommerce_saga.modules.inventory.contract import (
    InventoryService,
    ItemQuantity,
    ReleaseItems,
    ReserveItems,
)
from ecommerce_saga.modules.notification.contract import (
    NotificationService,
    NotificationType,
    SendNotification,
)
from ecommerce_saga.modules.order.contract import FailureReason, OrderStatus
from ecommerce_saga.modules.order.documents import OrderDocument
from ecommerce_saga.modules.order.repository import OrderRepository
from ecommerce_saga.modules.payment.contract import ChargePayment, PaymentService, RefundPayment
from ecommerce_saga.modules.shipping.contract import (
    Address,
    CancelShipment,
    ScheduleShipment,
    ShippingMethod,
    ShippingService,
)
from ecommerce_saga.saga import (
    ErrorInfo,
    EventKind,
    JsonObject,
    NonRetryableError,
    RetryPolicy,
    Saga,
    SagaEvent,
    SagaStep,
    StepContext,
    StepKind,
)

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
    "saga.cancelled": FailureReason.CANCELLED_BY_OPERATOR,
    "saga.deadline_exceeded": FailureReason.DEADLINE_EXCEEDED,
}

PARTICIPANT_RETRY = RetryPolicy(initial_interval=0.1, maximum_interval=5.0, maximum_attempts=10)
"""Participant calls: transient failures are retried (about ten seconds in all), then the saga compensates."""
BEST_EFFORT_RETRY = RetryPolicy(initial_interval=0.5, maximum_interval=60.0, maximum_attempts=30)
"""After the pivot: keep trying for several minutes; if that is not enough, park for an operator."""


def failure_reason(failure: ErrorInfo | None) -> FailureReason:
    """The order's failure reason for the saga failure that stopped it."""
    if failure is not None and failure.code in FAILURE_REASONS:
        return FAILURE_REASONS[failure.code]
    return FailureReason.SERVICE_UNAVAILABLE


@dataclass(frozen=True)
class OrderSagas:
    """The two order sagas, bound to the participants they call."""

    orders: OrderRepository
    inventory: InventoryService
    payment: PaymentService
    shipping: ShippingService
    notifications: NotificationService
    step_timeout: float = 10.0
    step_retry: RetryPolicy = PARTICIPANT_RETRY
    best_effort_retry: RetryPolicy = BEST_EFFORT_RETRY

    def definitions(self) -> list[Saga]:
        """Both saga definitions."""
        return [self.place_order(), self.cancel_order()]

    def _step(
        self, name: str, action: Any, compensation: Any = None, kind: StepKind = StepKind.COMPENSATABLE
    ) -> SagaStep:
        retry = self.step_retry if kind is StepKind.COMPENSATABLE else self.best_effort_retry
        return SagaStep(name, action, compensation, kind=kind, retry=retry, timeout=self.step_timeout)

    def place_order(self) -> Saga:
        """The place-order saga."""
        return Saga(
            PLACE_ORDER,
            [
                self._step("create_order", self._create_order, self._fail_order),
                self._step("reserve_inventory", self._reserve, self._release),
                self._step("process_payment", self._charge, self._refund),
                self._step("schedule_shipping", self._schedule, self._cancel_shipping),
                self._step("confirm_order", self._confirm, kind=StepKind.PIVOT),
                self._step(
                    "send_confirmation", self._notify_confirmed, self._notify_cancelled, StepKind.RETRIABLE
                ),
            ],
            compensation_retry=self.best_effort_retry,
        )

    def cancel_order(self) -> Saga:
        """The cancel-order saga."""
        return Saga(
            CANCEL_ORDER,
            [
                self._step("begin_cancellation", self._begin_cancellation, kind=StepKind.PIVOT),
                self._step("cancel_shipping", self._cancel_shipping, kind=StepKind.RETRIABLE),
                self._step("refund_payment", self._refund, kind=StepKind.RETRIABLE),
                self._step("release_inventory", self._release, kind=StepKind.RETRIABLE),
                self._step("finish_cancellation", self._finish_cancellation, kind=StepKind.RETRIABLE),
                self._step("send_cancellation", self._notify_cancelled, kind=StepKind.RETRIABLE),
            ],
            compensation_retry=self.best_effort_retry,
        )

    # --- place-order actions and compensations

    async def _create_order(self, ctx: StepContext) -> JsonObject:
        # The order record is written before its saga starts; this step is the anchor whose
        # compensation marks the order FAILED and tells the customer, whatever failed later.
        return {"order_id": ctx.input["order_id"]}

    async def _fail_order(self, ctx: StepContext) -> JsonObject:
        reason = failure_reason(ctx.failure)
        detail = ctx.failure.message if ctx.failure else "the order could not be completed"

        def fail(doc: OrderDocument) -> None:
            doc.status, doc.failure_reason, doc.failure_detail = OrderStatus.FAILED, reason, detail

        order_id = ctx.input["order_id"]
        await self.orders.update(
            order_id, fail, allowed_from=[OrderStatus.PENDING, OrderStatus.REQUIRES_ATTENTION]
        )
        await self.notifications.send(
            SendNotification(
                order_id=order_id,
                customer_id=ctx.input["customer_id"],
                type=NotificationType.ORDER_FAILED,
                idempotency_key=ctx.idempotency_key,
                attempt=ctx.attempt,
                details={"reason": reason.value},
            )
        )
        return {"failure_reason": reason.value}

    async def _reserve(self, ctx: StepContext) -> JsonObject:
        items = [ItemQuantity.model_validate(item) for item in ctx.input["items"]]
        command = ReserveItems(
            order_id=ctx.input["order_id"], items=items, idempotency_key=ctx.idempotency_key
        )
        reservation = await self.inventory.reserve(command)
        return {"reservation_id": reservation.reservation_id, "total_cents": reservation.total_cents}

    async def _release(self, ctx: StepContext) -> JsonObject:
        released = await self.inventory.release(
            ReleaseItems(order_id=ctx.input["order_id"], idempotency_key=ctx.idempotency_key)
        )
        return {"reservation_id": released.reservation_id, "status": released.status.value}

    async def _charge(self, ctx: StepContext) -> JsonObject:
        payment = await self.payment.charge(
            ChargePayment(
                order_id=ctx.input["order_id"],
                customer_id=ctx.input["customer_id"],
                amount_cents=ctx.input["total_cents"],
                currency=ctx.input["currency"],
                payment_token=ctx.input["payment_token"],
                idempotency_key=ctx.idempotency_key,
            )
        )
        return {"payment_id": payment.payment_id}

    async def _refund(self, ctx: StepContext) -> JsonObject:
        refunded = await self.payment.refund(
            RefundPayment(order_id=ctx.input["order_id"], idempotency_key=ctx.idempotency_key)
        )
        return {"payment_id": refunded.payment_id, "status": refunded.status.value}

    async def _schedule(self, ctx: StepContext) -> JsonObject:
        shipment = await self.shipping.schedule(
            ScheduleShipment(
                order_id=ctx.input["order_id"],
                customer_id=ctx.input["customer_id"],
                address=Address.model_validate(ctx.input["shipping_address"]),
                method=ShippingMethod(ctx.input["shipping_method"]),
                idempotency_key=ctx.idempotency_key,
            )
        )
        return {
            "shipping_id": shipment.shipping_id,
            "tracking_number": shipment.tracking_number,
            "estimated_delivery": shipment.estimated_delivery.isoformat()
            if shipment.estimated_delivery
            else None,
        }

    async def _cancel_shipping(self, ctx: StepContext) -> JsonObject:
        cancelled = await self.shipping.cancel(
            CancelShipment(order_id=ctx.input["order_id"], idempotency_key=ctx.idempotency_key)
        )
        return {"shipping_id": cancelled.shipping_id, "status": cancelled.status.value}

    async def _confirm(self, ctx: StepContext) -> JsonObject:
        shipping = ctx.outputs["schedule_shipping"]

        def complete(doc: OrderDocument) -> None:
            doc.status = OrderStatus.COMPLETED
            doc.payment_id = ctx.outputs["process_payment"]["payment_id"]
            doc.shipping_id = shipping["shipping_id"]
            doc.tracking_number = shipping["tracking_number"]
            eta = shipping["estimated_delivery"]
            doc.estimated_delivery = date.fromisoformat(eta) if eta else None

        await self.orders.update(
            ctx.input["order_id"],
            complete,
            allowed_from=[OrderStatus.PENDING, OrderStatus.REQUIRES_ATTENTION],
        )
        return {"status": OrderStatus.COMPLETED.value}

    async def _notify_confirmed(self, ctx: StepContext) -> JsonObject:
        return await self._notify(ctx, NotificationType.ORDER_CONFIRMED)

    async def _notify_cancelled(self, ctx: StepContext) -> JsonObject:
        return await self._notify(ctx, NotificationType.ORDER_CANCELLED)

    async def _notify(self, ctx: StepContext, kind: NotificationType) -> JsonObject:
        notification = await self.notifications.send(
            SendNotification(
                order_id=ctx.input["order_id"],
                customer_id=ctx.input["customer_id"],
                type=kind,
                idempotency_key=ctx.idempotency_key,
                attempt=ctx.attempt,
            )
        )
        return {"notification_id": notification.notification_id}

    # --- cancel-order actions

    async def _begin_cancellation(self, ctx: StepContext) -> JsonObject:
        def cancelling(doc: OrderDocument) -> None:
            doc.status = OrderStatus.CANCELLING
            doc.cancel_saga_id = ctx.saga_id

        order_id = ctx.input["order_id"]
        updated = await self.orders.update(order_id, cancelling, allowed_from=[OrderStatus.COMPLETED])
        if updated is None:
            current = await self.orders.get(order_id)
            if current is None or current.cancel_saga_id != ctx.saga_id:
                raise NonRetryableError(f"order {order_id} is not COMPLETED", code="order.not_cancellable")
        return {"status": OrderStatus.CANCELLING.value}

    async def _finish_cancellation(self, ctx: StepContext) -> JsonObject:
        def cancelled(doc: OrderDocument) -> None:
            doc.status = OrderStatus.CANCELLED

        await self.orders.update(ctx.input["order_id"], cancelled, allowed_from=[OrderStatus.CANCELLING])
        return {"status": OrderStatus.CANCELLED.value}


class ParkedOrderMarker:
    """A saga observer: when a place-order saga is parked, its order shows REQUIRES_ATTENTION.

    The mark is written in the background (observers must not block the engine). If it is lost
    in a crash, the order view still derives the status from the parked saga.
    """

    def __init__(self, orders: OrderRepository) -> None:
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
        def attention(doc: OrderDocument) -> None:
            doc.status = OrderStatus.REQUIRES_ATTENTION

        try:
            return await self._orders.update(order_id, attention, allowed_from=[OrderStatus.PENDING])
        except Exception:
            logger.exception("could not mark a parked order", extra={"order_id": order_id})
            return None
