"""The payment gateway port, and a deterministic sandbox gateway that keeps its data in a `SandboxLedger`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ecommerce_saga.modules.payment.contract import (
    PaymentDetails,
    PaymentMethod,
    PaymentMethodKind,
    PaymentMethodNotFoundError,
)
from ecommerce_saga.modules.payment.domain import card_brand, card_expired, last_four
from ecommerce_saga.modules.payment.repository import GatewayTransaction, SandboxLedger, VaultEntry
from ecommerce_saga.shared.clock import utcnow
from ecommerce_saga.shared.ids import new_id
from ecommerce_saga.shared.recent import Recent

CARD_DECLINED = "card_declined"
INSUFFICIENT_FUNDS = "insufficient_funds"
EXPIRED_CARD = "expired_card"
PAYPAL_DECLINED = "paypal_declined"
VOIDED = "voided"
"""The decline code of a charge whose idempotency key was voided before it was made."""

SANDBOX_DECLINING_CARDS = {
    "4000000000000002": CARD_DECLINED,
    "4000000000009995": INSUFFICIENT_FUNDS,
}
SANDBOX_DECLINING_PAYPAL_DOMAIN = "@decline.test"


@dataclass(frozen=True, slots=True)
class GatewayCharge:
    """Authorize and capture `amount_cents` on a tokenized method; `idempotency_key` makes it once."""

    token: str
    amount_cents: int
    currency: str
    idempotency_key: str
    description: str


@dataclass(frozen=True, slots=True)
class GatewayRefund:
    """Refund a captured charge in full; `idempotency_key` makes it once."""

    charge_reference: str
    amount_cents: int
    currency: str
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class GatewayResult:
    """What the provider answered: approved or not, its transaction reference, and why not."""

    approved: bool
    reference: str
    decline_code: str | None = None


@dataclass(frozen=True, slots=True)
class ApprovedCharge:
    """An approved charge the gateway holds under an idempotency key (what a void found instead)."""

    token: str
    amount_cents: int
    currency: str
    reference: str


class PaymentGateway(Protocol):
    """A payment provider. Every call with the same idempotency key has the effect of one.

    A provider that cannot be reached raises `PaymentGatewayUnavailableError` (retryable).
    """

    async def tokenize(self, details: PaymentDetails) -> PaymentMethod:
        """Vault the details; return a token and the parts that are safe to store."""
        ...

    async def payment_method(self, token: str) -> PaymentMethod | None:
        """The vaulted method behind `token`, or None if it is unknown."""
        ...

    async def charge(self, request: GatewayCharge) -> GatewayResult:
        """Authorize and capture. Raises `PaymentMethodNotFoundError` for an unknown token."""
        ...

    async def refund(self, request: GatewayRefund) -> GatewayResult:
        """Refund an approved charge in full."""
        ...

    async def void(self, idempotency_key: str) -> ApprovedCharge | None:
        """Make sure no money moves under a charge's idempotency key, unless it has already.

        None: nothing is or will be captured under the key (a later charge with it is declined
        with `VOIDED`, as is a repeat of a declined one). Otherwise the approved charge made
        under it first, which the caller must refund.
        """
        ...


class SandboxGateway:
    """A deterministic `PaymentGateway` following the card networks' test conventions.

    Outcomes depend only on the details tokenized and the date of the charge:

    - card `4000000000000002` → declined, `card_declined`;
    - card `4000000000009995` → declined, `insufficient_funds`;
    - a card whose expiry (month/year) is before the current month at charge time → declined,
      `expired_card`;
    - any other Luhn-valid card number → approved;
    - PAYPAL with an address ending in `@decline.test` → declined, `paypal_declined`;
      any other PAYPAL address → approved.

    Tokenizing stores a vault entry (`payment_methods`) with the brand, last four digits and
    expiry, and the outcome decided from the test number; never the number or the CVV. Each
    charge and refund is recorded once per idempotency key (`payment_gateway_transactions`), so
    a repeated call, even a concurrent one, returns the first call's result and charges once;
    a void takes a charge key's place in the same way.

    Args:
        ledger: Where the vault and the transactions are kept.
        clock: The current time, for the expiry check; `shared.clock.utcnow` by default.
        cache_size: How many vault entries, and how many approved charges, are remembered (both
            are never changed once written, so a refund of a charge made here reads nothing).
    """

    def __init__(
        self, ledger: SandboxLedger, clock: Callable[[], datetime] = utcnow, cache_size: int = 10_000
    ) -> None:
        self._ledger = ledger
        self._clock = clock
        # Vault entries and transactions never change once written, so they can be remembered:
        # the vault entries by token, the approved charges (what a refund looks up) by reference.
        self._vault: Recent[str, VaultEntry] = Recent(cache_size)
        self._charges: Recent[str, GatewayTransaction] = Recent(cache_size)

    async def _vault_entry(self, token: str) -> VaultEntry | None:
        entry = self._vault.get(token)
        if entry is None:
            entry = await self._ledger.method(token)
            if entry is not None:
                self._vault.put(token, entry)
        return entry

    async def _approved_charge(self, reference: str) -> GatewayTransaction | None:
        charge = self._charges.get(reference)
        if charge is None:
            charge = await self._ledger.charge(reference)
            if charge is None or not charge.approved:
                return None
            self._charges.put(reference, charge)
        return charge

    def _remember_charge(self, transaction: GatewayTransaction) -> GatewayTransaction:
        if transaction.kind == "charge" and transaction.approved:
            self._charges.put(transaction.reference, transaction)
        return transaction

    async def tokenize(self, details: PaymentDetails) -> PaymentMethod:
        """See `PaymentGateway.tokenize`."""
        entry = VaultEntry(token=new_id("pm"), method=details.method, created_at=utcnow())
        if details.method is PaymentMethodKind.PAYPAL:
            entry.paypal_email = details.paypal_email
            if (details.paypal_email or "").lower().endswith(SANDBOX_DECLINING_PAYPAL_DOMAIN):
                entry.sandbox_decline_code = PAYPAL_DECLINED
        elif details.card_number is not None:
            digits = details.card_number.get_secret_value()
            entry.brand, entry.last4 = card_brand(digits), last_four(digits)
            entry.expiry_month, entry.expiry_year = details.expiry_month, details.expiry_year
            entry.sandbox_decline_code = SANDBOX_DECLINING_CARDS.get(digits)
        await self._ledger.add_method(entry)
        self._vault.put(entry.token, entry)
        return _method(entry)

    async def payment_method(self, token: str) -> PaymentMethod | None:
        """See `PaymentGateway.payment_method`."""
        entry = await self._vault_entry(token)
        return None if entry is None else _method(entry)

    async def charge(self, request: GatewayCharge) -> GatewayResult:
        """See `PaymentGateway.charge`."""
        key = f"charge:{request.idempotency_key}"
        vault = await self._vault_entry(request.token)
        if vault is None:
            raise PaymentMethodNotFoundError(f"no payment method with token {request.token!r}")
        decline_code = self._decline_code(vault)
        charge = GatewayTransaction(
            key=key, kind="charge", reference=new_id("sbx_ch"), token=request.token,
            amount_cents=request.amount_cents, currency=request.currency,
            approved=decline_code is None, decline_code=decline_code, created_at=utcnow(),
        )  # fmt: skip
        recorded = await self._ledger.record(charge)  # a repeated key gets the first charge's result
        return _result(self._remember_charge(recorded))

    async def refund(self, request: GatewayRefund) -> GatewayResult:
        """See `PaymentGateway.refund`. Raises `LookupError` if no such approved charge exists."""
        key = f"refund:{request.idempotency_key}"
        # No read of the key first: a repeated refund finds its first record in the way.
        if await self._approved_charge(request.charge_reference) is None:
            raise LookupError(f"no approved charge {request.charge_reference!r} to refund")
        refund = GatewayTransaction(
            key=key, kind="refund", reference=new_id("sbx_re"),
            charge_reference=request.charge_reference, amount_cents=request.amount_cents,
            currency=request.currency, approved=True, created_at=utcnow(),
        )  # fmt: skip
        return _result(await self._ledger.record(refund))

    async def void(self, idempotency_key: str) -> ApprovedCharge | None:
        """See `PaymentGateway.void`: a declined charge recorded under the key, unless one is there."""
        void = GatewayTransaction(
            key=f"charge:{idempotency_key}", kind="void", reference=new_id("sbx_vd"),
            amount_cents=0, currency="USD", approved=False, decline_code=VOIDED, created_at=utcnow(),
        )  # fmt: skip
        first = self._remember_charge(await self._ledger.record(void))
        if first.kind != "charge" or not first.approved or first.token is None:
            return None
        return ApprovedCharge(
            token=first.token, amount_cents=first.amount_cents, currency=first.currency,
            reference=first.reference,
        )  # fmt: skip

    def _decline_code(self, vault: VaultEntry) -> str | None:
        month, year = vault.expiry_month, vault.expiry_year
        if month is not None and year is not None and card_expired(month, year, self._clock()):
            return EXPIRED_CARD
        return vault.sandbox_decline_code


def _result(transaction: GatewayTransaction) -> GatewayResult:
    return GatewayResult(
        approved=transaction.approved, reference=transaction.reference, decline_code=transaction.decline_code
    )


def _method(entry: VaultEntry) -> PaymentMethod:
    return PaymentMethod.model_validate(entry.model_dump(exclude={"sandbox_decline_code", "created_at"}))
