"""The inventory module over HTTP: `InventoryService` implemented by calling its endpoints.

Catalog prices never change once a product is created (see `pricing`), so a quote of products
whose prices an earlier quote answered is priced here, by the service's own rule, without a call.
"""

from __future__ import annotations

from ecommerce_saga.modules.inventory import pricing
from ecommerce_saga.modules.inventory.contract import (
    ItemQuantity,
    NewProduct,
    Product,
    ProductFilter,
    Quote,
    QuoteRequest,
    ReleaseItems,
    Reservation,
    ReserveItems,
    Restock,
)
from ecommerce_saga.modules.inventory.pricing import CatalogPrice
from ecommerce_saga.shared.contracts import Page
from ecommerce_saga.shared.recent import Recent
from ecommerce_saga.web.service_client import ServiceClient


class HttpInventoryService:
    """`InventoryService` on a remote inventory service.

    Args:
        client: The inventory service's client.
        price_cache_size: How many products' catalog prices are remembered from quotes.
    """

    def __init__(self, client: ServiceClient, price_cache_size: int = 10_000) -> None:
        self._client = client
        self._prices: Recent[str, CatalogPrice] = Recent(price_cache_size)

    async def quote(self, items: list[ItemQuantity]) -> Quote:
        """See `InventoryService.quote`: asked of the service unless every product's price is remembered."""
        wanted = {item.product_id for item in items}
        known = {pid: price for pid in wanted if (price := self._prices.get(pid)) is not None}
        if len(known) == len(wanted):
            return pricing.quote(items, known)
        answer = await self._client.call(
            "POST", "/api/inventory/quote", Quote, json=QuoteRequest(items=items)
        )
        for product_id, price in pricing.learned_prices(answer).items():
            self._prices.put(product_id, price)
        return answer

    async def reserve(self, command: ReserveItems) -> Reservation:
        """See `InventoryService.reserve`."""
        return await self._client.call("POST", "/api/inventory/reserve", Reservation, json=command)

    async def release(self, command: ReleaseItems) -> Reservation:
        """See `InventoryService.release`."""
        return await self._client.call("POST", "/api/inventory/release", Reservation, json=command)

    async def get_product(self, product_id: str, *, with_reservations: bool = True) -> Product:
        """See `InventoryService.get_product`: the module shows the reservations to operators
        only, so with them they come if this client's token is an operator's."""
        params = None if with_reservations else {"reservations": "false"}
        return await self._client.call("GET", f"/api/inventory/{product_id}", Product, params=params)

    async def list_products(self, query: ProductFilter) -> Page[Product]:
        """See `InventoryService.list_products`."""
        params = query.model_dump(mode="json", exclude_none=True)
        if "in_stock" in params:
            params["inStock"] = str(params.pop("in_stock")).lower()
        return await self._client.call("GET", "/api/inventory", Page[Product], params=params)

    async def create_product(self, product: NewProduct) -> Product:
        """See `InventoryService.create_product` (needs the admin token on the remote side)."""
        return await self._client.call("POST", "/api/inventory", Product, json=product)

    async def restock(self, product_id: str, restock: Restock) -> Product:
        """See `InventoryService.restock` (needs the admin token on the remote side)."""
        return await self._client.call("POST", f"/api/inventory/{product_id}/restock", Product, json=restock)
