"""The order module's local implementation: places orders, starts their sagas, reports outcomes."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from ecommerce_saga.modules.inventory.contract import InventoryService, ItemQuantity
from ecommerce_saga.modules.order.contract import (
    HistoryItem,
    IdempotencyKeyReusedError,
    Order,
    OrderFilter,
    OrderLine,
    OrderNotCancellableError,
    OrderNotFoundError,
    OrderStatus,
    OrderSummary,
    PaymentSummary,
    PlacedOrder,
    PlaceOrder,
    PriceChangedError,
)
from ecommerce_saga.modules.order.repository import OrderRecord
from ecommerce_saga.modules.order.saga import CANCEL_ORDER, PLACE_ORDER, CancelOrderInput, PlaceOrderInput
from ecommerce_saga.modules.order.tracker import OrderTracker
from ecommerce_saga.modules.payment.contract import PaymentService
from ecommerce_saga.saga import (
    PrecedingWriteRefusedError,
    SagaEngine,
    SagaNotFoundError,
    SagaState,
    SagaStatus,
)
from ecommerce_saga.shared.clock import utcnow
from ecommerce_saga.shared.contracts import Page
from ecommerce_saga.shared.ids import new_id

logger = logging.getLogger(__name__)


def request_fingerprint(command: PlaceOrder) -> str:
    """A hash of the request for idempotent replays.

    It covers the card's last four digits and length, never the full number or the CVV, so a
    replay with another card of the same ending counts as the same body (the order is not re-run).
    """
    body = command.model_dump(mode="json")
    card = command.payment.card_number
    if card is not None:
        number = card.get_secret_value()
        body["payment"]["card_number"] = f"{len(number)}:{number[-4:]}"
    body["payment"].pop("cvv", None)
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _history(state: SagaState) -> list[HistoryItem]:
    return [
        HistoryItem(
            saga=state.saga_type,
            step=entry.step,
            phase=entry.phase.value,
            attempt=entry.attempt,
            status=entry.status.value,
            started_at=entry.started_at,
            ended_at=entry.ended_at,
            duration_ms=None if entry.duration_seconds is None else round(entry.duration_seconds * 1000, 3),
            error_code=entry.error.code if entry.error else None,
            error=entry.error.message if entry.error else None,
            actor=entry.actor,
            reason=entry.reason,
        )
        for entry in state.history
    ]


def _summary(doc: OrderRecord) -> OrderSummary:
    return OrderSummary(
        order_id=doc.order_id,
        saga_id=doc.saga_id,
        customer_id=doc.customer_id,
        status=doc.status,
        failure_reason=doc.failure_reason,
        total_cents=doc.total_cents,
        currency=doc.currency,
        created_at=doc.created_at,
        updated_at=doc.updated_at,
    )


class LocalOrderService:
    """`OrderService` on its `OrderTracker` and the saga engine."""

    def __init__(
        self,
        orders: OrderTracker,
        engine: SagaEngine,
        inventory: InventoryService,
        payment: PaymentService,
        *,
        wait_seconds: float = 5.0,
        insert_write: Callable[[OrderRecord], object] | None = None,
    ) -> None:
        """`insert_write`: the order's insert as a write the engine's saga store makes right before
        the saga's insert, in one command (a Mongo saga store on the orders' database); None:
        the order is inserted first, then the saga is started."""
        self._insert_write = insert_write
        self._together = 0  # orders being stored with their saga's insert, in flight
        self._orders = orders
        self._engine = engine
        self._inventory = inventory
        self._payment = payment
        self._wait_seconds = wait_seconds

    async def place(
        self, command: PlaceOrder, *, idempotency_key: str | None = None, wait_seconds: float | None = None
    ) -> PlacedOrder:
        """See `OrderService.place`."""
        fingerprint = request_fingerprint(command)
        if idempotency_key is not None:
            replay = await self._replay(idempotency_key, fingerprint, wait_seconds)
            if replay is not None:
                return replay
        doc = await self._new_order(command, idempotency_key, fingerprint)
        if not await self._store_and_start(doc):  # lost a race for the same idempotency key
            assert idempotency_key is not None  # noqa: S101 - order ids are unique
            replay = await self._replay(idempotency_key, fingerprint, wait_seconds)
            assert replay is not None  # noqa: S101 - the winner's order exists
            return replay
        return await self._outcome(doc.order_id, wait_seconds, known=doc)

    async def _store_and_start(self, doc: OrderRecord) -> bool:
        """Store the new order, then start its saga; False, and no saga, if an order with its id
        or idempotency key exists.

        With `insert_write` the two inserts go to the database as one command, unless another
        order's do at that moment: then the order's insert and its saga's join the inserts other
        orders make meanwhile, which the repository and the saga store send together (group
        commit), and cost fewer commands per order than a command of their own each.
        """
        if self._insert_write is None or self._together:
            if not await self._orders.insert(doc):
                return False
            await self._start_saga(doc)
            return True
        self._together += 1
        try:
            await self._start_saga(doc, preceded_by=[self._insert_write(doc)])
        except PrecedingWriteRefusedError:
            return False
        finally:
            self._together -= 1
        self._orders.inserted(doc)
        return True

    async def resume_orphans(self, older_than: timedelta, limit: int = 100) -> int:
        """Start the saga of every order whose request stopped between storing it and starting it.

        An order is stored before its saga starts; a process killed in between leaves a PENDING
        order that nothing drives. A retry with the same Idempotency-Key starts its saga; this
        does the same for orders nobody retried, once they are `older_than` old (by then their
        request has long finished or died). The saga then completes or fails the order as usual.
        Returns how many orders were resumed.
        """
        resumed = 0
        for doc in await self._orders.pending_since_before(utcnow() - older_than, limit):
            try:
                await self._engine.get(doc.saga_id)
                continue  # its saga exists: the engine drives or recovers it
            except SagaNotFoundError:
                pass
            logger.warning("resuming an order whose request stopped before its saga started",
                           extra={"order_id": doc.order_id})  # fmt: skip
            await self._start_saga(doc)
            resumed += 1
        return resumed

    async def _replay(self, key: str, fingerprint: str, wait_seconds: float | None) -> PlacedOrder | None:
        existing = await self._orders.by_idempotency_key(key)
        if existing is None:
            return None
        if existing.request_hash != fingerprint:
            raise IdempotencyKeyReusedError("this Idempotency-Key was used with a different request body")
        await self._start_saga(existing)  # a no-op unless the first request died before starting it
        placed = await self._outcome(existing.order_id, wait_seconds)
        return placed.model_copy(update={"replayed": True})

    async def _new_order(self, command: PlaceOrder, key: str | None, fingerprint: str) -> OrderRecord:
        quote = await self._inventory.quote(command.items)
        if command.expected_total_cents is not None and command.expected_total_cents != quote.total_cents:
            raise PriceChangedError(
                f"the catalog total is {quote.total_cents} {quote.currency}, "
                f"not {command.expected_total_cents}",
                total_cents=quote.total_cents,
                currency=quote.currency,
            )
        method = await self._payment.tokenize(command.payment)  # only once the price is agreed
        order_id = new_id("ord")
        return OrderRecord(
            order_id=order_id,
            saga_id=order_id,
            customer_id=command.customer_id,
            items=[OrderLine.model_validate(item.model_dump()) for item in quote.items],
            total_cents=quote.total_cents,
            currency=quote.currency,
            shipping_address=command.shipping_address,
            shipping_method=command.shipping_method,
            payment=PaymentSummary(method=method.method, brand=method.brand, last4=method.last4),
            payment_token=method.token,
            contact_email=command.contact_email,
            idempotency_key=key,
            request_hash=fingerprint,
        )

    async def _start_saga(self, doc: OrderRecord, preceded_by: Sequence[object] = ()) -> None:
        saga_input = PlaceOrderInput(
            order_id=doc.order_id,
            customer_id=doc.customer_id,
            items=[ItemQuantity(product_id=i.product_id, quantity=i.quantity) for i in doc.items],
            total_cents=doc.total_cents,
            currency=doc.currency,
            payment_token=doc.payment_token,
            shipping_address=doc.shipping_address,
            shipping_method=doc.shipping_method,
        )
        await self._engine.start(
            PLACE_ORDER, saga_input, saga_id=doc.saga_id, correlation_id=doc.order_id, preceded_by=preceded_by
        )

    async def _outcome(
        self, order_id: str, wait_seconds: float | None, known: OrderRecord | None = None
    ) -> PlacedOrder:
        timeout = self._wait_seconds if wait_seconds is None else wait_seconds
        if timeout > 0:
            saga_ids = [known.saga_id, known.cancel_saga_id] if known else []
            elsewhere = lambda: not any(self._engine.is_running_here(s) for s in saga_ids if s)  # noqa: E731
            doc = await self._orders.wait_settled(order_id, timeout, known, poll=elsewhere)
        else:
            doc = known
        doc = doc or await self._orders.get(order_id)
        if doc is None:
            raise OrderNotFoundError(f"no order {order_id!r}")
        # Answer as soon as the order is settled: its confirmation (best effort) may still be on
        # its way, and shows in the history as in flight.
        return PlacedOrder(order=await self._view(doc), settled=doc.status.is_settled)

    async def get(self, order_id: str) -> Order:
        """See `OrderService.get`."""
        doc = await self._orders.get(order_id)
        if doc is None:
            raise OrderNotFoundError(f"no order {order_id!r}")
        return await self._view(doc)

    async def list(self, query: OrderFilter) -> Page[OrderSummary]:
        """See `OrderService.list`."""
        docs, total = await self._orders.find(query)
        return Page(items=[_summary(d) for d in docs], total=total, limit=query.limit, skip=query.skip)

    async def cancel(
        self, order_id: str, *, wait_seconds: float | None = None, customer_id: str | None = None
    ) -> PlacedOrder:
        """See `OrderService.cancel`."""
        doc = await self._orders.get(order_id)
        if doc is None or (customer_id is not None and doc.customer_id != customer_id):
            raise OrderNotFoundError(f"no order {order_id!r}")  # another customer's: as if it did not exist
        if doc.status is not OrderStatus.COMPLETED:
            raise OrderNotCancellableError(
                f"order {order_id} is {doc.status}; only COMPLETED orders can be cancelled"
            )
        saga_input = CancelOrderInput(order_id=doc.order_id, customer_id=doc.customer_id)
        cancel_id = f"{doc.order_id}-cancel"
        await self._engine.start(CANCEL_ORDER, saga_input, saga_id=cancel_id, correlation_id=doc.order_id)
        timeout = self._wait_seconds if wait_seconds is None else wait_seconds
        known: dict[str, SagaState] = {}
        if timeout > 0:  # a COMPLETED order counts as settled: wait for the cancellation itself
            known[cancel_id] = await self._engine.wait(cancel_id, timeout)
        # CANCELLED is final: as this process stored it, it needs no read; any other status may have moved on
        latest = self._orders.remembered(order_id)
        if latest is None or latest.status is not OrderStatus.CANCELLED:
            latest = await self._orders.get(order_id)
        order = await self._view(latest or doc, known)
        return PlacedOrder(order=order, settled=order.status is OrderStatus.CANCELLED)

    async def _view(self, doc: OrderRecord, known: dict[str, SagaState] | None = None) -> Order:
        history: list[HistoryItem] = []
        stage = None
        status = doc.status
        for saga_id in filter(None, [doc.saga_id, doc.cancel_saga_id]):
            state = (known or {}).get(saga_id)
            # a saga this process drives is seen as it is held, without a read
            seen = _seen(state) if state is not None else self._engine.peek(saga_id, _seen)
            if seen is None:
                try:
                    seen = _seen(await self._engine.get(saga_id))
                except SagaNotFoundError:
                    continue
            history += seen.history
            if seen.status.is_active:
                stage = seen.stage
                if status is OrderStatus.REQUIRES_ATTENTION:  # an operator resumed it
                    status = OrderStatus.PENDING
            elif seen.status is SagaStatus.REQUIRES_ATTENTION and not status.is_settled:
                status = OrderStatus.REQUIRES_ATTENTION
        return Order(
            order_id=doc.order_id,
            saga_id=doc.saga_id,
            customer_id=doc.customer_id,
            status=status,
            stage=stage,
            failure_reason=doc.failure_reason,
            failure_detail=doc.failure_detail,
            items=doc.items,
            total_cents=doc.total_cents,
            currency=doc.currency,
            shipping_address=doc.shipping_address,
            shipping_method=doc.shipping_method,
            payment=doc.payment,
            payment_id=doc.payment_id,
            shipping_id=doc.shipping_id,
            tracking_number=doc.tracking_number,
            estimated_delivery=doc.estimated_delivery,
            contact_email=doc.contact_email,
            created_at=doc.created_at,
            updated_at=doc.updated_at,
            history=history,
        )


@dataclass(frozen=True, slots=True)
class _SagaSeen:
    """What an order's view shows of one of its sagas."""

    status: SagaStatus
    stage: str | None
    history: list[HistoryItem]


def _seen(state: SagaState) -> _SagaSeen:
    return _SagaSeen(status=state.status, stage=_stage(state), history=_history(state))


def _stage(state: SagaState) -> str | None:
    entry = state.open_entry()
    if entry is None:
        return None
    return f"{entry.phase.value}:{entry.step}"
