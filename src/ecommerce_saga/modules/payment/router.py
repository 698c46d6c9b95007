"""The payment module over HTTP: payment reads, and saga endpoints to tokenize, charge and refund."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, status

from ecommerce_saga.identity import Principal
from ecommerce_saga.modules.payment.contract import (
    ChargePayment,
    Payment,
    PaymentDetails,
    PaymentFilter,
    PaymentMethod,
    PaymentNotFoundError,
    PaymentService,
    PaymentStatus,
    RefundPayment,
)
from ecommerce_saga.shared.contracts import MAX_PAGE_SIZE, SAFE_ID_PATTERN, Page
from ecommerce_saga.web.auth import Authenticator, customer_scope
from ecommerce_saga.web.params import FROM_DESCRIPTION, TO_DESCRIPTION, IsoDateTime, query_model
from ecommerce_saga.web.problems import responses

PaymentPath = Annotated[str, Path(pattern=SAFE_ID_PATTERN, description="The payment's id")]


def build_router(service: PaymentService, auth: Authenticator) -> APIRouter:
    """Routes under `/api/payments`: customers (their own payments), operators (any), the service (saga)."""
    router = APIRouter(prefix="/api/payments", tags=["payments"])
    saga = [Depends(auth.service)]

    @router.get("", response_model=Page[Payment], responses=responses(401, 403))
    async def list_payments(
        *,
        caller: Principal = Depends(auth.customer),
        customer_id: Annotated[str | None, Query(pattern=SAFE_ID_PATTERN)] = None,
        payment_status: Annotated[PaymentStatus | None, Query(alias="status")] = None,
        from_: Annotated[IsoDateTime | None, Query(alias="from", description=FROM_DESCRIPTION)] = None,
        to: Annotated[IsoDateTime | None, Query(description=TO_DESCRIPTION)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
        skip: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> Page[Payment]:
        """List payments, newest first, by customer, status and creation time (a customer: their own)."""
        query = query_model(
            PaymentFilter, customer_id=customer_scope(caller, customer_id), status=payment_status,
            from_=from_, to=to, limit=limit, skip=skip,
        )  # fmt: skip
        return await service.list_payments(query)

    @router.get("/{payment_id}", response_model=Payment, responses=responses(401, 403, 404))
    async def get_payment(*, payment_id: PaymentPath, caller: Principal = Depends(auth.customer)) -> Payment:
        """One payment: amount, method (brand and last four only) and status (a customer: their own)."""
        payment = await service.get_payment(payment_id)
        if not caller.may_see(payment.customer_id):
            raise PaymentNotFoundError(f"no payment {payment_id!r}")
        return payment

    @router.post(
        "/methods", response_model=PaymentMethod, status_code=status.HTTP_201_CREATED,
        dependencies=saga, tags=["saga"], responses=responses(401, 403, 503),
    )  # fmt: skip
    async def tokenize(details: PaymentDetails) -> PaymentMethod:
        """Exchange card or PayPal details for a token to charge later (service token)."""
        return await service.tokenize(details)

    @router.post(
        "/process", response_model=Payment, dependencies=saga, tags=["saga"],
        responses=responses(401, 402, 403, 404, 409, 503),
    )  # fmt: skip
    async def charge(command: ChargePayment) -> Payment:
        """Saga step: charge an order once; 402 `payment.declined` if declined (service token)."""
        return await service.charge(command)

    @router.post(
        "/refund", response_model=Payment, dependencies=saga, tags=["saga"],
        responses=responses(401, 403, 503),
    )  # fmt: skip
    async def refund(command: RefundPayment) -> Payment:
        """Saga compensation: refund an order's payment, or void it if none (service token)."""
        return await service.refund(command)

    return router
