"""The payment module's read port for the audit, on its own collections (`PaymentBooks`).

It reads the raw documents, not the Beanie models: the audit must see what a corrupted record
holds, and runs where the module is not hosted (the `audit` command, the order process).
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from ecommerce_saga.modules.payment.contract import GatewayEntry, PaymentEntry
from ecommerce_saga.modules.payment.documents import GatewayTransactionDocument, PaymentDocument


class MongoPaymentBooks:
    """`PaymentBooks` on the `payments` and `payment_gateway_transactions` collections of `db`."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._payments = db[PaymentDocument.Settings.name]
        self._ledger = db[GatewayTransactionDocument.Settings.name]

    async def payments(self) -> list[PaymentEntry]:
        """See `PaymentBooks.payments`."""
        return [
            PaymentEntry(
                order_id=doc["_id"],
                payment_id=doc.get("payment_id"),
                status=_text(doc.get("status")),
                charge_key=doc.get("charge_key"),
            )
            async for doc in self._payments.find({})
        ]

    async def gateway_ledger(self) -> list[GatewayEntry]:
        """See `PaymentBooks.gateway_ledger`."""
        return [_gateway_entry(doc) async for doc in self._ledger.find({})]


def _gateway_entry(doc: dict[str, Any]) -> GatewayEntry:
    kind = _text(doc.get("kind"))
    return GatewayEntry(
        transaction_id=doc["_id"],
        kind=kind,
        idempotency_key=doc["_id"].removeprefix(f"{kind}:"),
        reference=doc.get("reference", ""),
        charge_reference=doc.get("charge_reference", ""),
        amount_cents=doc.get("amount_cents", 0),
        approved=bool(doc.get("approved")),
    )


def _text(value: object) -> str | None:
    return None if value is None else str(value)
