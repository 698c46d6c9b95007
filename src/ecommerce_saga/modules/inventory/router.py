"""The inventory module over HTTP: catalog reads, catalog administration, and saga endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, status

from ecommerce_saga.identity import Principal
from ecommerce_saga.modules.inventory.contract import (
    CATEGORY_PATTERN,
    InventoryService,
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
from ecommerce_saga.shared.contracts import MAX_PAGE_SIZE, SAFE_ID_PATTERN, Page
from ecommerce_saga.web.auth import Authenticator
from ecommerce_saga.web.problems import responses

ProductPath = Annotated[str, Path(pattern=SAFE_ID_PATTERN, description="The product's id")]


def build_router(service: InventoryService, auth: Authenticator) -> APIRouter:
    """Routes under `/api/inventory`: the catalog for anyone, its administration for operators."""
    router = APIRouter(prefix="/api/inventory", tags=["inventory"])
    admin = [Depends(auth.operator)]
    saga = [Depends(auth.service)]

    @router.get("", response_model=Page[Product], responses=responses())
    async def list_products(
        category: Annotated[str | None, Query(max_length=100, pattern=CATEGORY_PATTERN)] = None,
        in_stock: Annotated[bool | None, Query(alias="inStock")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
        skip: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> Page[Product]:
        """List products, optionally by category and by whether they are in stock."""
        query = ProductFilter(category=category, in_stock=in_stock, limit=limit, skip=skip)
        return await service.list_products(query)

    @router.get(
        "/{product_id}",
        response_model=Product,
        responses=responses(401, 404),
        openapi_extra={"security": [{}, {"bearer": []}]},  # anyone; an operator also sees reservations
    )
    async def get_product(
        *,
        product_id: ProductPath,
        reservations: Annotated[
            bool, Query(description="Operators: false leaves the active reservations out (one read fewer)")
        ] = True,
        caller: Principal | None = Depends(auth.anyone),
    ) -> Product:
        """A product's stock levels (`available`, `reserved`); its active reservations for operators only."""
        # reservations name orders: not for the public, who are spared reading them
        shown = reservations and caller is not None and caller.is_operator
        return await service.get_product(product_id, with_reservations=shown)

    @router.post(
        "",
        response_model=Product,
        status_code=status.HTTP_201_CREATED,
        dependencies=admin,
        responses=responses(401, 403, 409),
    )
    async def create_product(product: NewProduct) -> Product:
        """Add a product to the catalog (operators)."""
        return await service.create_product(product)

    @router.post(
        "/{product_id}/restock",
        response_model=Product,
        dependencies=admin,
        responses=responses(401, 403, 404),
    )
    async def restock(product_id: ProductPath, restock: Restock) -> Product:
        """Add units to a product's available stock (operators)."""
        return await service.restock(product_id, restock)

    @router.post(
        "/quote", response_model=Quote, dependencies=saga, tags=["saga"], responses=responses(401, 403, 409)
    )
    async def quote(request: QuoteRequest) -> Quote:
        """Price items from the catalog (service token); unknown products are listed, not refused."""
        return await service.quote(request.items)

    @router.post(
        "/reserve",
        response_model=Reservation,
        dependencies=saga,
        tags=["saga"],
        responses=responses(401, 403, 409),
    )
    async def reserve(command: ReserveItems) -> Reservation:
        """Saga step: reserve every item of an order, or none (service token)."""
        return await service.reserve(command)

    @router.post(
        "/release",
        response_model=Reservation,
        dependencies=saga,
        tags=["saga"],
        responses=responses(401, 403),
    )
    async def release(command: ReleaseItems) -> Reservation:
        """Saga compensation: release an order's reservation (service token)."""
        return await service.release(command)

    return router
