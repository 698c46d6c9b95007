"""The payment module's local implementation: one charge per order, whatever the concurrency.

A charge first inserts the order's payment as PENDING (the order id is the document id, so only
one caller can); then asks the gateway, always with the idempotency key stored in that record;
then writes the outcome whole with `replace`, filtered on `version`. Whoever finds the record
PENDING (a concurrent caller, or a retry after a crash mid-way) asks the gateway again with the
same key: the gateway answers with the first call's result, so the order is charged once. Status
only moves forward (PENDING → COMPLETED | DECLINED, COMPLETED → REFUNDED), so a lost `version`
race just means reading what the winner wrote.
"""

from __future__ import annotations

import logging
from typing import Any

from beanie.exceptions import DocumentNotFound
from pymongo.errors import DuplicateKeyError

from ecommerce_saga.modules.payment.contract import (
    ChargePayment,
    Payment,
    PaymentDeclinedError,
    PaymentDetails,
    PaymentFilter,
    PaymentMethod,
    PaymentMethodNotFoundError,
    PaymentNotFoundError,
    PaymentStatus,
    PaymentVoidedError,
    RefundPayment,
)
from ecommerce_saga.modules.payment.documents import PaymentDocument
from ecommerce_saga.modules.payment.domain import epoch_ms
from ecommerce_saga.modules.payment.gateway import GatewayCharge, GatewayRefund, PaymentGateway
from ecommerce_saga.shared.clock import utcnow
from ecommerce_saga.shared.contracts import Page
from ecommerce_saga.shared.ids import new_id

logger = logging.getLogger(__name__)


def _payment(doc: PaymentDocument) -> Payment:
    return Payment(
        payment_id=doc.payment_id, order_id=doc.id, customer_id=doc.customer_id,
        amount_cents=doc.amount_cents, currency=doc.currency, method=doc.method,
        brand=doc.brand, last4=doc.last4, status=doc.status, decline_code=doc.decline_code,
        gateway_reference=doc.gateway_reference, created_at=doc.created_at, updated_at=doc.updated_at,
    )  # fmt: skip


class LocalPaymentService:
    """`PaymentService` on MongoDB and a `PaymentGateway`."""

    def __init__(self, gateway: PaymentGateway) -> None:
        self._gateway = gateway

    async def tokenize(self, details: PaymentDetails) -> PaymentMethod:
        """See `PaymentService.tokenize`."""
        return await self._gateway.tokenize(details)

    async def charge(self, command: ChargePayment) -> Payment:
        """See `PaymentService.charge`.

        Only the first call's idempotency key reaches the gateway; later calls for the same
        order, whatever their key, return (or finish) that first charge.
        """
        doc = await self._start(command)  # insert first: a replay finds the record in the way
        if doc.status is PaymentStatus.PENDING:
            doc = await self._settle(doc)
        if doc.status is PaymentStatus.DECLINED:
            raise PaymentDeclinedError(
                f"the payment for order {doc.id} was declined ({doc.decline_code})",
                decline_code=doc.decline_code,
            )
        if doc.status is PaymentStatus.VOIDED:
            raise PaymentVoidedError(f"order {doc.id} was refunded before it was charged")
        return _payment(doc)

    async def refund(self, command: RefundPayment) -> Payment:
        """See `PaymentService.refund`. The gateway refund's key is derived from the payment."""
        doc = await PaymentDocument.get(command.order_id)
        if doc is None:
            doc = await self._void(command.order_id)
        # Each pass moves the payment forward (ours or a concurrent caller's write), so this ends.
        while doc.status in (PaymentStatus.PENDING, PaymentStatus.COMPLETED):
            if doc.status is PaymentStatus.PENDING:
                doc = await self._settle(doc)
            else:
                doc = await self._refund(doc)
        return _payment(doc)

    async def _start(self, command: ChargePayment) -> PaymentDocument:
        method = await self._gateway.payment_method(command.payment_token)
        if method is None:
            raise PaymentMethodNotFoundError(f"no payment method with token {command.payment_token!r}")
        doc = PaymentDocument(
            id=command.order_id, payment_id=new_id("pay"), customer_id=command.customer_id,
            amount_cents=command.amount_cents, currency=command.currency, method=method.method,
            brand=method.brand, last4=method.last4, payment_token=command.payment_token,
            charge_key=command.idempotency_key, status=PaymentStatus.PENDING, **_created_now(),
        )  # fmt: skip
        try:
            await doc.insert()
        except DuplicateKeyError:
            return await _current(command.order_id)  # someone else is charging this order
        return doc

    async def _void(self, order_id: str) -> PaymentDocument:
        tombstone = PaymentDocument(
            id=order_id, payment_id=new_id("pay"), customer_id=None, amount_cents=0,
            currency="USD", method=None, status=PaymentStatus.VOIDED, **_created_now(),
        )  # fmt: skip
        try:
            await tombstone.insert()  # a late charge for this order must not take money
        except DuplicateKeyError:
            return await _current(order_id)
        logger.info("payment for order %s voided before any charge", order_id)
        return tombstone

    async def _settle(self, doc: PaymentDocument) -> PaymentDocument:
        """Get the pending charge's outcome from the gateway (idempotent per key) and record it."""
        # Only a VOIDED tombstone lacks these, and it is never PENDING.
        assert doc.payment_token is not None and doc.charge_key is not None  # noqa: S101
        request = GatewayCharge(
            token=doc.payment_token, amount_cents=doc.amount_cents, currency=doc.currency,
            idempotency_key=doc.charge_key, description=f"order {doc.id}",
        )  # fmt: skip
        result = await self._gateway.charge(request)
        doc.status = PaymentStatus.COMPLETED if result.approved else PaymentStatus.DECLINED
        doc.decline_code = result.decline_code
        doc.gateway_reference = result.reference
        saved = await _save(doc)
        if saved is doc:
            logger.info(
                "payment %s for order %s: %s %s", doc.payment_id, doc.id, doc.status.value,
                doc.decline_code or "",
            )  # fmt: skip
        return saved

    async def _refund(self, doc: PaymentDocument) -> PaymentDocument:
        assert doc.gateway_reference is not None  # noqa: S101 - a completed charge has one
        request = GatewayRefund(
            charge_reference=doc.gateway_reference, amount_cents=doc.amount_cents,
            currency=doc.currency, idempotency_key=f"{doc.payment_id}:refund",
        )  # fmt: skip
        await self._gateway.refund(request)
        doc.status = PaymentStatus.REFUNDED
        saved = await _save(doc)
        if saved is doc:
            logger.info("payment %s for order %s refunded", doc.payment_id, doc.id)
        return saved

    async def get_payment(self, payment_id: str) -> Payment:
        """See `PaymentService.get_payment`."""
        doc = await PaymentDocument.find_one({"payment_id": payment_id})
        if doc is None:
            raise PaymentNotFoundError(f"no payment {payment_id!r}")
        return _payment(doc)

    async def list_payments(self, query: PaymentFilter) -> Page[Payment]:
        """See `PaymentService.list_payments`."""
        criteria: dict[str, Any] = {}
        if query.customer_id is not None:
            criteria["customer_id"] = query.customer_id
        if query.status is not None:
            criteria["status"] = query.status.value
        created: dict[str, int] = {}
        if query.from_ is not None:
            created["$gte"] = epoch_ms(query.from_)
        if query.to is not None:
            created["$lt"] = epoch_ms(query.to)
        if created:
            criteria["created_ms"] = created
        total = await PaymentDocument.find(criteria).count()
        docs = (
            await PaymentDocument.find(criteria)
            .sort("-created_ms", "-_id")
            .skip(query.skip)
            .limit(query.limit)
            .to_list()
        )
        return Page(items=[_payment(d) for d in docs], total=total, limit=query.limit, skip=query.skip)


def _created_now() -> dict[str, Any]:
    now = utcnow()
    return {"created_at": now, "created_ms": epoch_ms(now), "updated_at": now}


async def _current(order_id: str) -> PaymentDocument:
    doc = await PaymentDocument.get(order_id)
    assert doc is not None  # noqa: S101 - payments are never deleted
    return doc


async def _save(doc: PaymentDocument) -> PaymentDocument:
    """Write `doc` whole unless someone changed it since it was read; then return theirs."""
    expected = doc.version
    doc.version += 1
    doc.updated_at = utcnow()
    try:
        await PaymentDocument.find_one({"_id": doc.id, "version": expected}).replace_one(doc)
    except DocumentNotFound:
        return await _current(doc.id)
    return doc
