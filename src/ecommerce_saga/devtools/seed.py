"""Demo data: a small catalog, loaded into an empty catalog at start-up (`SHOP_DEMO_CATALOG`)."""

from __future__ import annotations

import logging

from ecommerce_saga.modules.inventory.contract import (
    InventoryService,
    NewProduct,
    ProductExistsError,
    ProductFilter,
)

logger = logging.getLogger(__name__)

DEMO_CATALOG = [
    NewProduct(
        product_id="sku-keyboard",
        name="Mechanical keyboard",
        category="peripherals",
        price_cents=8999,
        quantity=50,
    ),
    NewProduct(
        product_id="sku-mouse", name="Wireless mouse", category="peripherals", price_cents=2999, quantity=100
    ),
    NewProduct(
        product_id="sku-monitor", name='27" 4K monitor', category="displays", price_cents=32999, quantity=20
    ),
    NewProduct(
        product_id="sku-laptop-stand",
        name="Aluminium laptop stand",
        category="accessories",
        price_cents=4599,
        quantity=35,
    ),
    NewProduct(
        product_id="sku-usb-hub", name="USB-C hub", category="accessories", price_cents=3999, quantity=60
    ),
    NewProduct(
        product_id="sku-headphones",
        name="Noise-cancelling headphones",
        category="audio",
        price_cents=19999,
        quantity=15,
    ),
    NewProduct(
        product_id="sku-webcam", name="HD webcam", category="peripherals", price_cents=6999, quantity=25
    ),
    NewProduct(
        product_id="sku-vintage-camera",
        name="Vintage film camera",
        category="cameras",
        price_cents=45000,
        quantity=0,
    ),
]


async def load_demo_catalog(inventory: InventoryService) -> int:
    """Add the demo products if the catalog is empty; return how many were added."""
    if (await inventory.list_products(ProductFilter(limit=1))).total > 0:
        return 0
    added = 0
    for product in DEMO_CATALOG:
        try:
            await inventory.create_product(product)
            added += 1
        except ProductExistsError:
            continue
    logger.info("demo catalog loaded", extra={"products": added})
    return added
