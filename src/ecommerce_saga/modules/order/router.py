"""The order API: place, read, list and cancel orders."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Response, status

from ecommerce_saga.identity import Principal
from ecommerce_saga.modules.order.contract import (
    CancelOrder,
    CreateOrder,
    CustomerId,
    Order,
    OrderFilter,
    OrderNotFoundError,
    OrderService,
    OrderStatus,
    OrderSummary,
    PlacedOrder,
    PlaceOrder,
)
from ecommerce_saga.shared.contracts import MAX_PAGE_SIZE, SAFE_ID_PATTERN, InvalidRequestError, Page
from ecommerce_saga.web.auth import Authenticator, customer_scope, forbidden
from ecommerce_saga.web.problems import responses

OrderPath = Annotated[str, Path(pattern=SAFE_ID_PATTERN, description="The order's id")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="Same key and same body: the same order, no second saga.",
    ),
]
Prefer = Annotated[
    str | None,
    Header(max_length=200, description="`respond-async` answers 202 at once, without waiting for the saga."),
]

_ACCEPTED: dict[int | str, dict[str, Any]] = {
    status.HTTP_202_ACCEPTED: {"model": Order, "description": "The saga is still running; poll `Location`."}
}


class OrderRequest(PlaceOrder):
    """The body of `POST /api/orders`: the customer is the token's; an operator names one."""

    customer_id: CustomerId | None = None  # type: ignore[assignment]  # optional here, required in PlaceOrder

    def placed_by(self, principal: Principal) -> PlaceOrder:
        """The order as `principal` may place it: 403 for a customer ordering in another's name."""
        customer = self.customer_id
        if principal.is_operator:
            customer = customer or principal.customer_id
            if customer is None:
                raise InvalidRequestError("customer_id: required when an operator orders for a customer")
        elif customer is None:
            customer = principal.customer_id
        elif customer != principal.customer_id:
            raise forbidden("a customer may order only in their own name")
        contact = self.contact_email
        if contact is None and customer == principal.customer_id:  # never an operator's own address
            contact = principal.email
        return PlaceOrder(
            customer_id=customer, items=self.items, payment=self.payment,
            shipping_address=self.shipping_address, shipping_method=self.shipping_method,
            expected_total_cents=self.expected_total_cents, contact_email=contact,
        )  # fmt: skip


def _respond(placed: PlacedOrder, response: Response) -> Order:
    order = placed.order
    if placed.replayed:  # the answer to an earlier request with the same Idempotency-Key
        response.headers["Idempotent-Replayed"] = "true"
    if not placed.settled:
        response.status_code = status.HTTP_202_ACCEPTED
        response.headers["Location"] = f"/api/orders/{order.order_id}"
    return order


def build_router(service: OrderService, auth: Authenticator, *, wait_seconds: float) -> APIRouter:
    """Routes under `/api/orders`: customers (their own orders), operators (any), the service (saga)."""
    router = APIRouter(prefix="/api/orders", tags=["orders"])
    saga = [Depends(auth.service)]

    async def owned(order_id: str, caller: Principal) -> Order:
        order = await service.get(order_id)
        if not caller.may_see(order.customer_id):  # another customer's order does not exist for them
            raise OrderNotFoundError(f"no order {order_id!r}")
        return order

    @router.post(
        "/create", response_model=Order, dependencies=saga, tags=["saga"], responses=responses(401, 403, 409)
    )
    async def create(command: CreateOrder) -> Order:
        """Saga endpoint: create the order record and start its saga; answers at once (service token)."""
        placed = await service.place(command.order, idempotency_key=command.idempotency_key, wait_seconds=0)
        return placed.order

    @router.post(
        "/cancel",
        response_model=Order,
        dependencies=saga,
        tags=["saga"],
        responses=responses(401, 403, 404, 409),
    )
    async def cancel(command: CancelOrder) -> Order:
        """Saga endpoint: start cancelling a COMPLETED order; answers at once (service token)."""
        return (await service.cancel(command.order_id, wait_seconds=0)).order

    @router.post(
        "",
        response_model=Order,
        status_code=status.HTTP_201_CREATED,
        responses={**_ACCEPTED, **responses(401, 403, 409, 503)},
    )
    async def place_order(
        request: OrderRequest,
        response: Response,
        caller: Principal = Depends(auth.customer),
        idempotency_key: IdempotencyKey = None,
        prefer: Prefer = None,
    ) -> Order:
        """Place an order and run its saga: reserve items, charge, schedule delivery, notify.

        The customer is the token's subject; an operator orders on behalf of the body's `customer_id`.

        Answers 201 with the settled order (`COMPLETED` or `FAILED` with `failure_reason`), or 202
        with the pending order and a `Location` header if the saga is still running after the wait.
        A request that repeats an earlier one's `Idempotency-Key` gets that order, marked with the
        header `Idempotent-Replayed: true`.
        """
        wait = 0.0 if prefer and "respond-async" in prefer.lower() else wait_seconds
        placed = await service.place(
            request.placed_by(caller), idempotency_key=idempotency_key, wait_seconds=wait
        )
        return _respond(placed, response)

    @router.get("", response_model=Page[OrderSummary], responses=responses(401, 403))
    async def list_orders(
        *,
        caller: Principal = Depends(auth.customer),
        customer_id: Annotated[str | None, Query(pattern=SAFE_ID_PATTERN)] = None,
        order_status: Annotated[OrderStatus | None, Query(alias="status")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
        skip: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> Page[OrderSummary]:
        """List orders by customer and status, newest first (a customer: their own only)."""
        query = OrderFilter(
            customer_id=customer_scope(caller, customer_id), status=order_status, limit=limit, skip=skip
        )
        return await service.list(query)

    @router.get("/{order_id}", response_model=Order, responses=responses(401, 403, 404))
    async def get_order(*, order_id: OrderPath, caller: Principal = Depends(auth.customer)) -> Order:
        """An order with its saga's transaction history (a customer: their own)."""
        return await owned(order_id, caller)

    @router.post(
        "/{order_id}/cancel", response_model=Order, responses={**_ACCEPTED, **responses(401, 403, 404, 409)}
    )
    async def cancel_order(
        order_id: OrderPath,
        response: Response,
        caller: Principal = Depends(auth.customer),
        prefer: Prefer = None,
    ) -> Order:
        """Cancel a COMPLETED order: cancel shipping, refund, release the items, notify.

        Any other state answers 409. A customer may cancel their own orders.
        """
        wait = 0.0 if prefer and "respond-async" in prefer.lower() else wait_seconds
        owner = None if caller.is_operator else caller.customer_id or ""  # no customer: owns nothing
        placed = await service.cancel(order_id, wait_seconds=wait, customer_id=owner)
        return _respond(placed, response)

    return router
