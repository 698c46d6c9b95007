"""The catalog, stock levels and reservations: the `InventoryRepository` port, on MongoDB (Beanie)
and in memory.

Stock moves are atomic and happen once per order: `hold` takes units from `available` to
`reserved` and marks, in the same conditional update, that this order holds them; `undo_hold`
and `give_back` move them back once. The marks are forgotten once the reservation's own status
records the outcome. Both implementations pass `tests/contract/test_inventory_repository_contract.py`.

A product's name, price and currency never change once it is created (no operation changes
them), so the MongoDB repository remembers them (see `pricing`: so does the HTTP client); an
operation that changes a price must forget the remembered one.

`port` holds the records and the protocol, `mongo` the MongoDB implementation, `memory` the
in-memory one; the names are imported from here.
"""

from ecommerce_saga.modules.inventory.pricing import CatalogPrice
from ecommerce_saga.modules.inventory.repository.memory import InMemoryInventoryRepository
from ecommerce_saga.modules.inventory.repository.mongo import BeanieInventoryRepository
from ecommerce_saga.modules.inventory.repository.port import (
    ACTIVE,
    Held,
    HoldRefused,
    InventoryRepository,
    Mark,
    ProductRecord,
    ReservationRecord,
)

__all__ = [
    "ACTIVE",
    "BeanieInventoryRepository",
    "CatalogPrice",
    "Held",
    "HoldRefused",
    "InMemoryInventoryRepository",
    "InventoryRepository",
    "Mark",
    "ProductRecord",
    "ReservationRecord",
]
