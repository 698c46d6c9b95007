"""An in-memory `PaymentService`: tokenized methods and at most one payment per order."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Literal

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
from ecommerce_saga.modules.payment.domain import card_brand, card_expired, last_four
from ecommerce_saga.modules.payment.gateway import (
    EXPIRED_CARD,
    PAYPAL_DECLINED,
    SANDBOX_DECLINING_CARDS,
    SANDBOX_DECLINING_PAYPAL_DOMAIN,
)
from ecommerce_saga.shared.clock import utcnow
from ecommerce_saga.shared.contracts import Page
from ecommerce_saga.shared.ids import new_id
from tests.fakes.support import Journal, Outage, page_of


class FakePaymentService:
    """`PaymentService` in memory.

    `charge` is idempotent per order (a declined order stays declined); `refund` refunds a
    completed payment once, and voids an order never charged so that a late charge is refused.
    New charges decline as the sandbox gateway's test cards, PayPal addresses and expired cards
    (at `clock`) do, or every one after `decline_charges`; `make_unavailable` makes `charge` and
    `refund` raise `ServiceUnavailableError`. Only brand and last four digits of a card are kept.
    `gateway_calls` counts the charges and refunds decided: how often money moved, or would have.
    """

    def __init__(self, journal: Journal | None = None, clock: Callable[[], datetime] = utcnow) -> None:
        self.journal = journal if journal is not None else Journal()
        self.methods: dict[str, PaymentMethod] = {}
        self.payments: dict[str, Payment] = {}
        self.decline_code: str | None = None
        self.gateway_calls: dict[Literal["charge", "refund"], int] = {"charge": 0, "refund": 0}
        self._sandbox_declines: dict[str, str] = {}
        self._clock = clock
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
            brand=card_brand(number) if number else None,
            last4=last_four(number) if number else None,
            expiry_month=details.expiry_month,
            expiry_year=details.expiry_year,
            paypal_email=details.paypal_email,
        )
        self.methods[method.token] = method
        declines = SANDBOX_DECLINING_CARDS.get(number or "")
        if (details.paypal_email or "").lower().endswith(SANDBOX_DECLINING_PAYPAL_DOMAIN):
            declines = PAYPAL_DECLINED
        if declines is not None:
            self._sandbox_declines[method.token] = declines
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
            self.gateway_calls["refund"] += 1
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
        matching = sorted(
            (
                p
                for p in self.payments.values()
                if (query.customer_id is None or p.customer_id == query.customer_id)
                and (query.status is None or p.status is query.status)
                and query.covers(p.created_at)
            ),
            key=lambda p: (p.created_at, p.order_id),
            reverse=True,
        )
        return page_of(matching, query)

    def _new_payment(self, command: ChargePayment) -> Payment:
        method = self.methods.get(command.payment_token)
        if method is None:
            raise PaymentMethodNotFoundError(f"no payment method with token {command.payment_token!r}")
        now = utcnow()
        decline_code = self._decline_code(method)
        payment = Payment(
            payment_id=new_id("pay"), order_id=command.order_id, customer_id=command.customer_id,
            amount_cents=command.amount_cents, currency=command.currency, method=method.method,
            brand=method.brand, last4=method.last4,
            status=PaymentStatus.DECLINED if decline_code else PaymentStatus.COMPLETED,
            decline_code=decline_code, gateway_reference=new_id("ch"), created_at=now, updated_at=now,
        )  # fmt: skip
        self.payments[command.order_id] = payment
        self.gateway_calls["charge"] += 1
        if payment.status is PaymentStatus.COMPLETED:
            self.journal.record(command.order_id, "payment.charged")
        return payment

    def _decline_code(self, method: PaymentMethod) -> str | None:
        if self.decline_code is not None:
            return self.decline_code
        month, year = method.expiry_month, method.expiry_year
        if month is not None and year is not None and card_expired(month, year, self._clock()):
            return EXPIRED_CARD
        return self._sandbox_declines.get(method.token)


if TYPE_CHECKING:
    from ecommerce_saga.modules.payment.contract import PaymentService

    _conforms: PaymentService = FakePaymentService()
