"""The payment module over HTTP: `PaymentService` implemented by calling its endpoints."""

from __future__ import annotations

from ecommerce_saga.modules.payment.contract import (
    ChargePayment,
    Payment,
    PaymentDetails,
    PaymentFilter,
    PaymentMethod,
    RefundPayment,
)
from ecommerce_saga.shared.contracts import Page
from ecommerce_saga.web.service_client import ServiceClient


class HttpPaymentService:
    """`PaymentService` on a remote payment service."""

    def __init__(self, client: ServiceClient) -> None:
        self._client = client

    async def tokenize(self, details: PaymentDetails) -> PaymentMethod:
        """See `PaymentService.tokenize`: the card details travel once, to the payment service."""
        return await self._client.call(
            "POST", "/api/payments/methods", PaymentMethod, json=details.wire_payload()
        )

    async def charge(self, command: ChargePayment) -> Payment:
        """See `PaymentService.charge`."""
        return await self._client.call("POST", "/api/payments/process", Payment, json=command)

    async def refund(self, command: RefundPayment) -> Payment:
        """See `PaymentService.refund`."""
        return await self._client.call("POST", "/api/payments/refund", Payment, json=command)

    async def get_payment(self, payment_id: str) -> Payment:
        """See `PaymentService.get_payment`."""
        return await self._client.call("GET", f"/api/payments/{payment_id}", Payment)

    async def list_payments(self, query: PaymentFilter) -> Page[Payment]:
        """See `PaymentService.list_payments`."""
        params = query.model_dump(mode="json", exclude_none=True)
        if "from_" in params:
            params["from"] = params.pop("from_")
        return await self._client.call("GET", "/api/payments", Page[Payment], params=params)
