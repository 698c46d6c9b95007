"""The shipping module over HTTP: `ShippingService` implemented by calling its endpoints."""

from __future__ import annotations

from ecommerce_saga.modules.shipping.contract import (
    CancelShipment,
    ScheduleShipment,
    Shipment,
    ShipmentFilter,
)
from ecommerce_saga.shared.contracts import Page
from ecommerce_saga.web.service_client import ServiceClient


class HttpShippingService:
    """`ShippingService` on a remote shipping service."""

    def __init__(self, client: ServiceClient) -> None:
        self._client = client

    async def schedule(self, command: ScheduleShipment) -> Shipment:
        """See `ShippingService.schedule`."""
        return await self._client.call("POST", "/api/shipping/schedule", Shipment, json=command)

    async def cancel(self, command: CancelShipment) -> Shipment:
        """See `ShippingService.cancel`."""
        return await self._client.call("POST", "/api/shipping/cancel", Shipment, json=command)

    async def get_shipment(self, shipping_id: str) -> Shipment:
        """See `ShippingService.get_shipment`."""
        return await self._client.call("GET", f"/api/shipping/{shipping_id}", Shipment)

    async def list_shipments(self, query: ShipmentFilter) -> Page[Shipment]:
        """See `ShippingService.list_shipments`."""
        params = query.model_dump(mode="json", exclude_none=True)
        if "from_" in params:
            params["from"] = params.pop("from_")
        return await self._client.call("GET", "/api/shipping", Page[Shipment], params=params)
