"""Each module's read port for the audit (`books.py`) reads its records as stored, odd ones too.

The audit must see what a service would refuse to load: a status no enum names, a missing
field, a marker left on a product. Raw documents are written here, as a corrupted database
would hold them, and read back through the port.
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from ecommerce_saga.modules.inventory.books import MongoInventoryBooks
from ecommerce_saga.modules.inventory.contract import HeldQuantity, ReservationEntry, StockEntry
from ecommerce_saga.modules.notification.books import MongoNotificationBooks
from ecommerce_saga.modules.notification.contract import NotificationEntry
from ecommerce_saga.modules.order.books import MongoOrderBooks
from ecommerce_saga.modules.order.contract import OrderEntry
from ecommerce_saga.modules.payment.books import MongoPaymentBooks
from ecommerce_saga.modules.payment.contract import GatewayEntry, PaymentEntry
from ecommerce_saga.modules.shipping.books import MongoShippingBooks
from ecommerce_saga.modules.shipping.contract import ShipmentEntry

Db = AsyncDatabase[dict[str, Any]]


async def test_reads_stock_markers_and_reservations_as_stored(mongo_db: Db) -> None:
    await mongo_db.products.insert_many([
        {"_id": "sku-a", "name": "A", "available": -1, "reserved": 3, "holds": {"o-9": 1, "o-2": 2},
         "releases": {}},
        {"_id": "sku-b", "name": "B"},
    ])  # fmt: skip
    await mongo_db.reservations.insert_many([
        {"_id": "o-1", "status": "RESERVED", "items": [{"product_id": "sku-a", "quantity": 3, "name": "A"}]},
        {"_id": "o-2", "status": "MISPLACED", "items": []},
        {"_id": "o-3"},
    ])  # fmt: skip
    books = MongoInventoryBooks(mongo_db)

    stock = sorted(await books.stock(), key=lambda entry: entry.product_id)
    reservations = sorted(await books.reservations(), key=lambda entry: entry.order_id)

    assert stock == [
        StockEntry(product_id="sku-a", available=-1, reserved=3, pending_holds=["o-2", "o-9"]),
        StockEntry(product_id="sku-b", available=0, reserved=0),
    ]
    held = [HeldQuantity(product_id="sku-a", quantity=3)]
    assert reservations == [
        ReservationEntry(order_id="o-1", status="RESERVED", items=held),
        ReservationEntry(order_id="o-2", status="MISPLACED", items=[]),
        ReservationEntry(order_id="o-3", status=None, items=[]),
    ]  # fmt: skip


async def test_reads_payments_and_the_gateway_ledger_as_stored(mongo_db: Db) -> None:
    await mongo_db.payments.insert_many([
        {"_id": "o-1", "payment_id": "pay-1", "status": "COMPLETED", "charge_key": "k-1", "amount_cents": 9},
        {"_id": "o-2", "payment_id": "pay-2", "status": "VOIDED", "charge_key": None},
    ])  # fmt: skip
    await mongo_db.payment_gateway_transactions.insert_many([
        {"_id": "charge:k-1", "kind": "charge", "reference": "ch_1", "amount_cents": 900, "approved": True,
         "charge_reference": None},
        {"_id": "refund:k-1:r", "kind": "refund", "reference": "re_1", "charge_reference": "ch_1",
         "amount_cents": 100, "approved": False},
    ])  # fmt: skip
    books = MongoPaymentBooks(mongo_db)

    payments = sorted(await books.payments(), key=lambda entry: entry.order_id)
    ledger = sorted(await books.gateway_ledger(), key=lambda entry: entry.transaction_id)

    assert payments == [
        PaymentEntry(order_id="o-1", payment_id="pay-1", status="COMPLETED", charge_key="k-1"),
        PaymentEntry(order_id="o-2", payment_id="pay-2", status="VOIDED", charge_key=None),
    ]
    assert ledger == [
        GatewayEntry(transaction_id="charge:k-1", kind="charge", idempotency_key="k-1", reference="ch_1",
                     charge_reference=None, amount_cents=900, approved=True),
        GatewayEntry(transaction_id="refund:k-1:r", kind="refund", idempotency_key="k-1:r", reference="re_1",
                     charge_reference="ch_1", amount_cents=100, approved=False),
    ]  # fmt: skip


async def test_reads_shipments_orders_and_notifications_as_stored(mongo_db: Db) -> None:
    await mongo_db.shipments.insert_many([
        {"_id": "o-1", "shipping_id": "shp-1", "status": "SCHEDULED", "carrier": "x"},
        {"_id": "o-2", "status": "LOST"},
    ])  # fmt: skip
    await mongo_db.orders.insert_many([
        {"_id": "o-1", "status": "COMPLETED", "saga_id": "o-1", "payment_id": "pay-1", "shipping_id": "shp-1",
         "total_cents": 900, "customer_id": "c"},
        {"_id": "o-2", "status": "LIMBO"},
    ])  # fmt: skip
    await mongo_db.notifications.insert_many([
        {"_id": "n-1", "order_id": "o-1", "type": "ORDER_CONFIRMED", "status": "SENT"},
        {"_id": "n-2", "order_id": "o-1", "type": "ORDER_CONFIRMED", "status": "PENDING"},
    ])  # fmt: skip

    shipments = sorted(await MongoShippingBooks(mongo_db).shipments(), key=lambda entry: entry.order_id)
    orders = sorted(await MongoOrderBooks(mongo_db).orders(), key=lambda entry: entry.order_id)
    notices = sorted(
        await MongoNotificationBooks(mongo_db).notifications(), key=lambda entry: entry.notification_id
    )

    assert shipments == [
        ShipmentEntry(order_id="o-1", shipping_id="shp-1", status="SCHEDULED"),
        ShipmentEntry(order_id="o-2", shipping_id=None, status="LOST"),
    ]
    assert orders == [
        OrderEntry(order_id="o-1", status="COMPLETED", saga_id="o-1", payment_id="pay-1", shipping_id="shp-1",
                   total_cents=900),
        OrderEntry(order_id="o-2", status="LIMBO", saga_id=None),
    ]  # fmt: skip
    assert notices == [
        NotificationEntry(notification_id="n-1", order_id="o-1", type="ORDER_CONFIRMED"),
        NotificationEntry(notification_id="n-2", order_id="o-1", type="ORDER_CONFIRMED"),
    ]
