"""The payment module's local implementation: one charge per order, whatever the concurrency.

A charge first adds the order's payment as PENDING (the order id keys it, so only one caller
can); then asks the gateway, always with the idempotency key stored in that record; then writes
the outcome whole with `replace`, conditional on `version`. Whoever finds the record
PENDING (a concurrent caller, or a retry after a crash mid-way) asks the gateway again with the
same key: the gateway answers with the first call's result, so the order is charged once. Status
only moves forward (PENDING → COMPLETED | DECLINED, COMPLETED → REFUNDED), so a lost `version`
race just means reading what the winner wrote.
"""

from __future__ import annotations

import logging

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
from ecommerce_saga.modules.payment.gateway import GatewayCharge, GatewayRefund, PaymentGateway
from ecommerce_saga.modules.payment.repository import PaymentRecord, PaymentRepository
from ecommerce_saga.shared.clock import utcnow
from ecommerce_saga.shared.contracts import Page
from ecommerce_saga.shared.ids import new_id

logger = logging.getLogger(__name__)


def _payment(record: PaymentRecord) -> Payment:
    return Payment.model_validate(record.model_dump(exclude={"payment_token", "charge_key", "version"}))


class LocalPaymentService:
    """`PaymentService` on a `PaymentRepository` and a `PaymentGateway`."""

    def __init__(self, repository: PaymentRepository, gateway: PaymentGateway) -> None:
        self._payments = repository
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
                f"the payment for order {doc.order_id} was declined ({doc.decline_code})",
                decline_code=doc.decline_code,
            )
        if doc.status is PaymentStatus.VOIDED:
            raise PaymentVoidedError(f"order {doc.order_id} was refunded before it was charged")
        return _payment(doc)

    async def refund(self, command: RefundPayment) -> Payment:
        """See `PaymentService.refund`. The gateway refund's key is derived from the payment."""
        doc = await self._payments.get(command.order_id)
        if doc is None:
            doc = await self._void(command.order_id)
        # Each pass moves the payment forward (ours or a concurrent caller's write), so this ends.
        while doc.status in (PaymentStatus.PENDING, PaymentStatus.COMPLETED):
            if doc.status is PaymentStatus.PENDING:
                doc = await self._settle(doc)
            else:
                doc = await self._refund(doc)
        return _payment(doc)

    async def _start(self, command: ChargePayment) -> PaymentRecord:
        method = await self._gateway.payment_method(command.payment_token)
        if method is None:
            raise PaymentMethodNotFoundError(f"no payment method with token {command.payment_token!r}")
        now = utcnow()
        new = PaymentRecord(
            order_id=command.order_id, payment_id=new_id("pay"), customer_id=command.customer_id,
            amount_cents=command.amount_cents, currency=command.currency, method=method.method,
            brand=method.brand, last4=method.last4, payment_token=command.payment_token,
            charge_key=command.idempotency_key, status=PaymentStatus.PENDING, created_at=now, updated_at=now,
        )  # fmt: skip
        return await self._payments.add(new)  # someone else's, if they are charging this order already

    async def _void(self, order_id: str) -> PaymentRecord:
        now = utcnow()
        tombstone = PaymentRecord(
            order_id=order_id, payment_id=new_id("pay"), customer_id=None, amount_cents=0,
            currency="USD", method=None, status=PaymentStatus.VOIDED, created_at=now, updated_at=now,
        )  # fmt: skip
        stored = await self._payments.add(tombstone)  # a late charge for this order must not take money
        if stored is tombstone:
            logger.info("payment for order %s voided before any charge", order_id)
        return stored

    async def _settle(self, doc: PaymentRecord) -> PaymentRecord:
        """Get the pending charge's outcome from the gateway (idempotent per key) and record it."""
        # Only a VOIDED tombstone lacks these, and it is never PENDING.
        assert doc.payment_token is not None and doc.charge_key is not None  # noqa: S101
        request = GatewayCharge(
            token=doc.payment_token, amount_cents=doc.amount_cents, currency=doc.currency,
            idempotency_key=doc.charge_key, description=f"order {doc.order_id}",
        )  # fmt: skip
        result = await self._gateway.charge(request)
        doc.status = PaymentStatus.COMPLETED if result.approved else PaymentStatus.DECLINED
        doc.decline_code = result.decline_code
        doc.gateway_reference = result.reference
        saved = await self._save(doc)
        if saved is doc:
            logger.info(
                "payment %s for order %s: %s %s", doc.payment_id, doc.order_id, doc.status.value,
                doc.decline_code or "",
            )  # fmt: skip
        return saved

    async def _refund(self, doc: PaymentRecord) -> PaymentRecord:
        assert doc.gateway_reference is not None  # noqa: S101 - a completed charge has one
        request = GatewayRefund(
            charge_reference=doc.gateway_reference, amount_cents=doc.amount_cents,
            currency=doc.currency, idempotency_key=f"{doc.payment_id}:refund",
        )  # fmt: skip
        await self._gateway.refund(request)
        doc.status = PaymentStatus.REFUNDED
        saved = await self._save(doc)
        if saved is doc:
            logger.info("payment %s for order %s refunded", doc.payment_id, doc.order_id)
        return saved

    async def _save(self, doc: PaymentRecord) -> PaymentRecord:
        """Write `doc` whole unless someone changed it since it was read; then return theirs."""
        expected = doc.version
        doc.version += 1
        doc.updated_at = utcnow()
        if await self._payments.replace(doc, expected):
            return doc
        current = await self._payments.get(doc.order_id)
        assert current is not None  # noqa: S101 - payments are never deleted
        return current

    async def get_payment(self, payment_id: str) -> Payment:
        """See `PaymentService.get_payment`."""
        record = await self._payments.by_payment_id(payment_id)
        if record is None:
            raise PaymentNotFoundError(f"no payment {payment_id!r}")
        return _payment(record)

    async def list_payments(self, query: PaymentFilter) -> Page[Payment]:
        """See `PaymentService.list_payments`."""
        records, total = await self._payments.find(query)
        return Page(items=[_payment(r) for r in records], total=total, limit=query.limit, skip=query.skip)
