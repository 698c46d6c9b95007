"""The payment module's local implementation: one charge per order, whatever the concurrency.

Every gateway call for an order's charge uses one idempotency key derived from the order id
(`charge_key`), so the gateway charges an order once however many calls, with whatever keys,
ask for it. A charge asks the gateway first, then adds the order's payment with its outcome
(the order id keys it, so one record per order); a caller that finds a record there already
returns that one. A crash between the two leaves a charge without its record until the step
runs again: the gateway answers the retry with the first charge, and the record is added then.

A refund that finds no payment voids the charge key at the gateway first (a charge made later
under it is answered "voided" and moves no money), then adds a VOIDED tombstone; if the key
holds a charge already (its record not yet written), that charge is recorded and refunded.
Status only moves forward (COMPLETED → REFUNDED), written whole with `replace` conditional on
`version`, so a lost race just means reading what the winner wrote. A PENDING record (left by a
release that wrote one before charging) is finished with its own key.
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
from ecommerce_saga.modules.payment.gateway import (
    VOIDED,
    GatewayCharge,
    GatewayRefund,
    GatewayResult,
    PaymentGateway,
)
from ecommerce_saga.modules.payment.repository import PaymentRecord, PaymentRepository
from ecommerce_saga.shared.clock import utcnow
from ecommerce_saga.shared.contracts import Page
from ecommerce_saga.shared.ids import new_id
from ecommerce_saga.shared.recent import Recent

logger = logging.getLogger(__name__)


def charge_key(order_id: str) -> str:
    """The idempotency key of every gateway call that charges (or voids) the order."""
    return f"{order_id}:charge"


def _payment(record: PaymentRecord) -> Payment:
    return Payment.model_validate(record.model_dump(exclude={"payment_token", "charge_key", "version"}))


def _charged(command: ChargePayment, method: PaymentMethod, key: str, result: GatewayResult) -> PaymentRecord:
    """The payment record of a charge the gateway answered."""
    now = utcnow()
    return PaymentRecord(
        order_id=command.order_id, payment_id=new_id("pay"), customer_id=command.customer_id,
        amount_cents=command.amount_cents, currency=command.currency, method=method.method,
        brand=method.brand, last4=method.last4, payment_token=command.payment_token, charge_key=key,
        status=PaymentStatus.COMPLETED if result.approved else PaymentStatus.DECLINED,
        decline_code=result.decline_code, gateway_reference=result.reference,
        created_at=now, updated_at=now,
    )  # fmt: skip


def _outcome(doc: PaymentRecord) -> Payment:
    """The charge's outcome: the payment, or the error a declined or voided one is."""
    if doc.status is PaymentStatus.DECLINED:
        raise PaymentDeclinedError(
            f"the payment for order {doc.order_id} was declined ({doc.decline_code})",
            decline_code=doc.decline_code,
        )
    if doc.status is PaymentStatus.VOIDED:
        raise PaymentVoidedError(f"order {doc.order_id} was refunded before it was charged")
    return _payment(doc)


class LocalPaymentService:
    """`PaymentService` on a `PaymentRepository` and a `PaymentGateway`.

    Args:
        cache_size: How many orders' payments, as this service wrote them last, are remembered.
    """

    def __init__(
        self, repository: PaymentRepository, gateway: PaymentGateway, cache_size: int = 10_000
    ) -> None:
        self._payments = repository
        self._gateway = gateway
        # The payments this service wrote last, by order: a refund starts from its own without a
        # read. One another process changed since is caught by the conditional write (`_save`),
        # which then reads it; a status that is final (REFUNDED, DECLINED, VOIDED) never changes.
        self._written: Recent[str, PaymentRecord] = Recent(cache_size)

    def _remember(self, doc: PaymentRecord) -> PaymentRecord:
        self._written.put(doc.order_id, doc.model_copy(deep=True))
        return doc

    async def _payment_of(self, order_id: str) -> PaymentRecord | None:
        """The order's payment: as this service wrote it last, or as stored."""
        written = self._written.get(order_id)
        if written is not None:
            return written.model_copy(deep=True)
        return await self._payments.get(order_id)

    async def tokenize(self, details: PaymentDetails) -> PaymentMethod:
        """See `PaymentService.tokenize`."""
        return await self._gateway.tokenize(details)

    async def charge(self, command: ChargePayment) -> Payment:
        """See `PaymentService.charge`.

        Every call for the order charges under its `charge_key`, whatever the command's own
        key, so the gateway moves the money once; the first record added for the order wins.
        """
        method = await self._gateway.payment_method(command.payment_token)
        if method is None:
            raise PaymentMethodNotFoundError(f"no payment method with token {command.payment_token!r}")
        key = charge_key(command.order_id)
        request = GatewayCharge(
            token=command.payment_token, amount_cents=command.amount_cents, currency=command.currency,
            idempotency_key=key, description=f"order {command.order_id}",
        )  # fmt: skip
        result = await self._gateway.charge(request)
        if result.decline_code == VOIDED:  # refunded before it was charged: the refund writes the record
            raise PaymentVoidedError(f"order {command.order_id} was refunded before it was charged")
        new = _charged(command, method, key, result)
        doc = await self._payments.add(new)  # someone else's, if they recorded this order first
        if doc is new:
            self._remember(doc)
            logger.info(
                "payment %s for order %s: %s %s", doc.payment_id, doc.order_id, doc.status.value,
                doc.decline_code or "",
            )  # fmt: skip
        else:
            doc = await self._after_lost_add(doc, request, result)
        return _outcome(doc)

    async def refund(self, command: RefundPayment) -> Payment:
        """See `PaymentService.refund`. The gateway refund's key is derived from the payment."""
        doc = await self._payment_of(command.order_id)
        if doc is None:
            doc = await self._void(command.order_id)
        # Each pass moves the payment forward (ours or a concurrent caller's write), so this ends.
        while doc.status in (PaymentStatus.PENDING, PaymentStatus.COMPLETED):
            if doc.status is PaymentStatus.PENDING:
                doc = await self._settle(doc)
            else:
                doc = await self._refund(doc)
        return _payment(doc)

    async def _after_lost_add(
        self, doc: PaymentRecord, ours: GatewayCharge, result: GatewayResult
    ) -> PaymentRecord:
        """The order's record was there first. One with another key (a PENDING record or a tombstone
        an earlier release wrote) does not name this call's charge: that money goes back at once."""
        if doc.charge_key != ours.idempotency_key and result.approved:
            request = GatewayRefund(
                charge_reference=result.reference, amount_cents=ours.amount_cents,
                currency=ours.currency, idempotency_key=f"{ours.idempotency_key}:superseded",
            )  # fmt: skip
            await self._gateway.refund(request)
            logger.warning("order %s: a charge not named by its payment record was refunded", doc.order_id)
        if doc.status is PaymentStatus.PENDING:
            doc = await self._settle(doc)
        return doc

    async def _void(self, order_id: str) -> PaymentRecord:
        """No payment for the order: void its charge key first, so that a late charge moves no money;
        or, if a charge got there first and its record is not written yet, record that charge."""
        key = charge_key(order_id)
        charged = await self._gateway.void(key)
        now = utcnow()
        record = PaymentRecord(
            order_id=order_id, payment_id=new_id("pay"), customer_id=None, amount_cents=0,
            currency="USD", method=None, status=PaymentStatus.VOIDED, created_at=now, updated_at=now,
        )  # fmt: skip
        if charged is not None:
            method = await self._gateway.payment_method(charged.token)
            record.amount_cents, record.currency = charged.amount_cents, charged.currency
            record.payment_token, record.charge_key = charged.token, key
            record.status, record.gateway_reference = PaymentStatus.COMPLETED, charged.reference
            if method is not None:
                record.method, record.brand, record.last4 = method.method, method.brand, method.last4
        stored = await self._payments.add(record)  # a late charge for this order must not take money
        if stored is record:
            logger.info(
                "payment for order %s: %s before its charge was recorded", order_id, stored.status.value
            )
        return stored

    async def _settle(self, doc: PaymentRecord) -> PaymentRecord:
        """Finish a PENDING charge with its own key (the gateway answers its first result) and record it."""
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
            return self._remember(doc)
        current = await self._payments.get(doc.order_id)
        assert current is not None  # noqa: S101 - payments are never deleted
        return self._remember(current)

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
