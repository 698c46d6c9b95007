"""The shipping module over HTTP: shipment reads and the saga endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from ecommerce_saga.identity import Principal
from ecommerce_saga.modules.shipping.contract import (
    CancelShipment,
    ScheduleShipment,
    Shipment,
    ShipmentFilter,
    ShipmentNotFoundError,
    ShipmentStatus,
    ShippingService,
)
from ecommerce_saga.shared.contracts import MAX_PAGE_SIZE, SAFE_ID_PATTERN, Page
from ecommerce_saga.web.auth import Authenticator, customer_scope
from ecommerce_saga.web.params import FROM_DESCRIPTION, TO_DESCRIPTION, IsoDateTime, query_model
from ecommerce_saga.web.problems import responses

ShippingPath = Annotated[str, Path(pattern=SAFE_ID_PATTERN, description="The shipment's id")]


def build_router(service: ShippingService, auth: Authenticator) -> APIRouter:
    """Routes under `/api/shipping`: customers (their own shipments), operators (any), the service (saga)."""
    router = APIRouter(prefix="/api/shipping", tags=["shipping"])
    saga = [Depends(auth.service)]

    @router.get("", response_model=Page[Shipment], responses=responses(401, 403))
    async def list_shipments(
        *,
        caller: Principal = Depends(auth.customer),
        customer_id: Annotated[str | None, Query(pattern=SAFE_ID_PATTERN)] = None,
        status: Annotated[ShipmentStatus | None, Query()] = None,
        from_: Annotated[IsoDateTime | None, Query(alias="from", description=FROM_DESCRIPTION)] = None,
        to: Annotated[IsoDateTime | None, Query(description=TO_DESCRIPTION)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
        skip: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> Page[Shipment]:
        """List shipments, newest first, by customer, status and creation time (a customer: their own)."""
        query = query_model(
            ShipmentFilter, customer_id=customer_scope(caller, customer_id), status=status,
            from_=from_, to=to, limit=limit, skip=skip,
        )  # fmt: skip
        return await service.list_shipments(query)

    @router.get("/{shipping_id}", response_model=Shipment, responses=responses(401, 403, 404))
    async def get_shipment(
        *, shipping_id: ShippingPath, caller: Principal = Depends(auth.customer)
    ) -> Shipment:
        """A shipment: carrier, tracking number, delivery estimate and address (a customer: their own)."""
        shipment = await service.get_shipment(shipping_id)
        if not caller.may_see(shipment.customer_id):
            raise ShipmentNotFoundError(f"no shipment {shipping_id!r}")
        return shipment

    @router.post(
        "/schedule", response_model=Shipment, dependencies=saga, tags=["saga"],
        responses=responses(401, 403, 409),
    )  # fmt: skip
    async def schedule(command: ScheduleShipment) -> Shipment:
        """Saga step: schedule an order's shipment, once per order (service token)."""
        return await service.schedule(command)

    @router.post(
        "/cancel", response_model=Shipment, dependencies=saga, tags=["saga"],
        responses=responses(401, 403),
    )  # fmt: skip
    async def cancel(command: CancelShipment) -> Shipment:
        """Saga compensation: cancel an order's shipment (service token)."""
        return await service.cancel(command)

    return router
