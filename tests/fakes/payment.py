"""An in-memory `PaymentService`: tokenized methods and at most one payment per order."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ecommerce_saga.modules.payment.contract import (
    CardBrand,
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
from ecommerce_saga.shared.clock import utcnow
from ecommerce_saga.shared.contracts import Page
from ecommerce_saga.shared.ids import new_id
from tests.fakes.support import Journal, Outage, page_of


class FakePaymentService:
    """`PaymentService` in memory.

    `charge` is idempotent per order (a declined order stays declined); `refund` refunds a
    completed payment once, and voids an order never charged so that a late charge is refused.
    `decline_charges` makes new charges decline; `make_unavailable` makes `charge` and `refund`
    raise `ServiceUnavailableError`. Only brand and last four digits of a card are kept.
    """

    def __init__(self, journal: Journal | None = None) -> None:
        self.journal = journal if journal is not None else Journal()
        self.methods: dict[str, PaymentMethod] = {}
        self.payments: dict[str, Payment] = {}
        self.decline_code: str | None = None
        self._outage = Outage("payment")

    def decline_charges(self, decline_code: str = "card_declined") -> None:
        """Decline every new charge with `decline_code`."""
        self.decline_code = decline_code

    def make_unavailable(self, times: int | None = None) -> None:
        """Fail the next `times` charges and refunds (every one when None)."""
        self._outage.begin(times)

    def make_available(self) -> None:
        """Answer again."""
        self._outage.end()

    async def tokenize(self, details: PaymentDetails) -> PaymentMethod:
        """See `PaymentService.tokenize`."""
        number = details.card_number.get_secret_value() if details.card_number else None
        method = PaymentMethod(
            token=new_id("pm"),
            method=details.method,
            brand=(CardBrand.VISA if number.startswith("4") else CardBrand.OTHER) if number else None,
            last4=number[-4:] if number else None,
            expiry_month=details.expiry_month,
            expiry_year=details.expiry_year,
            paypal_email=details.paypal_email,
        )
        self.methods[method.token] = method
        return method

    async def charge(self, command: ChargePayment) -> Payment:
        """See `PaymentService.charge`."""
        self._outage.check()
        payment = self.payments.get(command.order_id)
        if payment is None:
            payment = self._new_payment(command)
        if payment.status is PaymentStatus.DECLINED:
            raise PaymentDeclinedError(
                f"the payment for order {payment.order_id} was declined ({payment.decline_code})",
                decline_code=payment.decline_code,
            )
        if payment.status is PaymentStatus.VOIDED:
            raise PaymentVoidedError(f"order {payment.order_id} was refunded before it was charged")
        return payment

    async def refund(self, command: RefundPayment) -> Payment:
        """See `PaymentService.refund`."""
        self._outage.check()
        payment = self.payments.get(command.order_id)
        if payment is None:  # a tombstone: a late charge for this order must not take money
            now = utcnow()
            payment = Payment(
                payment_id=new_id("pay"), order_id=command.order_id, customer_id=None, amount_cents=0,
                currency="USD", method=None, status=PaymentStatus.VOIDED, created_at=now, updated_at=now,
            )  # fmt: skip
        elif payment.status is PaymentStatus.COMPLETED:
            payment = payment.model_copy(update={"status": PaymentStatus.REFUNDED, "updated_at": utcnow()})
            self.journal.record(command.order_id, "payment.refunded")
        self.payments[command.order_id] = payment
        return payment

    async def get_payment(self, payment_id: str) -> Payment:
        """See `PaymentService.get_payment`."""
        for payment in self.payments.values():
            if payment.payment_id == payment_id:
                return payment
        raise PaymentNotFoundError(f"no payment {payment_id!r}")

    async def list_payments(self, query: PaymentFilter) -> Page[Payment]:
        """See `PaymentService.list_payments`."""
        matching = [
            p
            for p in reversed(self.payments.values())
            if (query.customer_id is None or p.customer_id == query.customer_id)
            and (query.status is None or p.status is query.status)
            and (query.from_ is None or p.created_at >= query.from_)
            and (query.to is None or p.created_at < query.to)
        ]
        return page_of(matching, query)

    def _new_payment(self, command: ChargePayment) -> Payment:
        method = self.methods.get(command.payment_token)
        if method is None:
            raise PaymentMethodNotFoundError(f"no payment method with token {command.payment_token!r}")
        now = utcnow()
        payment = Payment(
            payment_id=new_id("pay"), order_id=command.order_id, customer_id=command.customer_id,
            amount_cents=command.amount_cents, currency=command.currency, method=method.method,
            brand=method.brand, last4=method.last4,
            status=PaymentStatus.DECLINED if self.decline_code else PaymentStatus.COMPLETED,
            decline_code=self.decline_code, gateway_reference=None if self.decline_code else new_id("ch"),
            created_at=now, updated_at=now,
        )  # fmt: skip
        self.payments[command.order_id] = payment
        if payment.status is PaymentStatus.COMPLETED:
            self.journal.record(command.order_id, "payment.charged")
        return payment


if TYPE_CHECKING:
    from ecommerce_saga.modules.payment.contract import PaymentService

    _conforms: PaymentService = FakePaymentService()
