"""RFC 9457 problem+json: one place turns every error into a problem document with a stable code."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from pymongo.errors import ConnectionFailure, PyMongoError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from ecommerce_saga.saga.errors import StoreUnavailableError
from ecommerce_saga.shared.contracts import ContractError
from ecommerce_saga.web.auth import AuthError

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    402: "payment_required",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    500: "internal_error",
    503: "service_unavailable",
}


class InvalidParam(BaseModel):
    """One invalid field of a request."""

    name: str
    reason: str


class Problem(BaseModel):
    """An RFC 9457 problem document; `code` is stable and machine-readable."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    code: str
    detail: str | None = None
    instance: str | None = None
    invalid_params: list[InvalidParam] | None = None


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str | None,
    request: Request,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem+json response."""
    body = Problem(
        type=f"https://ecommerce-saga.dev/problems/{code}",
        title=title,
        status=status,
        code=code,
        detail=detail,
        instance=request.url.path,
        **extra,
    )
    headers = dict(headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return JSONResponse(
        body.model_dump(exclude_none=True, mode="json"),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries documenting problem+json answers for `statuses`.

    400 (a body that is not JSON) and 422 (a request that fails validation) are always included.
    """
    return {
        status: {
            "model": Problem,
            "description": _HTTP_CODES.get(status, "error").replace("_", " ").capitalize(),
            "content": {
                PROBLEM_MEDIA_TYPE: {
                    "schema": {"$ref": "#/components/schemas/Problem"},
                    "example": _example(status),
                }
            },
        }
        for status in (400, *statuses, 422)
    }


_EXAMPLE_DETAILS = {
    400: "There was an error parsing the body",
    401: "a bearer token is required",
    402: "the payment for order ord_3f2a was declined (card_declined)",
    403: "this operation needs an operator's token",
    404: "no order 'ord_3f2a'",
    409: "order ord_3f2a is FAILED; only COMPLETED orders can be cancelled",
    422: "payment.card_number: Value error, is not a valid card number (Luhn check failed)",
    503: "payment service unreachable: ConnectError",
}


def _example(status: int) -> dict[str, Any]:
    code = _HTTP_CODES.get(status, "error")
    example: dict[str, Any] = {
        "type": f"https://ecommerce-saga.dev/problems/{code}",
        "title": code.replace("_", " ").capitalize(),
        "status": status,
        "code": code,
        "detail": _EXAMPLE_DETAILS.get(status, "the request failed"),
        "instance": "/api/orders",
    }
    if status == 422:
        example["invalid_params"] = [{"name": "payment.card_number", "reason": "Luhn check failed"}]
    return example


async def _contract_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ContractError)  # noqa: S101 - registered for this type only
    if exc.status >= 500:  # a dependency failed: say so, or a 5xx leaves no trace
        logger.warning(
            "answered %s %s", exc.status, exc.code, extra={"path": request.url.path, "detail": exc.detail}
        )
    return problem_response(exc.status, exc.code, exc.title, exc.detail, request, **exc.extra)


async def _auth_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AuthError)  # noqa: S101 - registered for this type only
    return problem_response(exc.status, exc.code, exc.title, exc.detail, request, headers=exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for this type only
    params = [
        InvalidParam(
            name=".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body",
            reason=str(error.get("msg", "invalid")),
        )
        for error in exc.errors()
    ]
    detail = "; ".join(f"{p.name}: {p.reason}" for p in params[:5])
    return problem_response(
        422, "validation_error", "Invalid request", detail, request, invalid_params=params
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for this type only
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    title = code.replace("_", " ").capitalize()
    detail = exc.detail if isinstance(exc.detail, str) else None
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return problem_response(exc.status_code, code, title, detail, request, headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        route_methods = getattr(route, "methods", None)
        if match is not Match.NONE and route_methods:
            methods |= set(route_methods)
    return sorted(methods)


DATABASE_RETRY_AFTER_SECONDS = 5
DATABASE_UNAVAILABLE = "database_unavailable"
"""The code of the 503 a module answers when its database is down or stalled."""


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """The database cannot be reached or did not answer in time: the client may retry (same key).

    Whatever the request had written stays consistent (a retry with its Idempotency-Key finds
    an order that was stored, and drives its saga).
    """
    logger.warning("database unavailable", extra={"path": request.url.path, "error": type(exc).__name__})
    return problem_response(
        503,
        DATABASE_UNAVAILABLE,
        "Service unavailable",
        "the database cannot be reached; retry later (with the same Idempotency-Key)",
        request,
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """A driver error: an outage or a timeout is 503, anything else a bug (500)."""
    assert isinstance(exc, PyMongoError)  # noqa: S101 - registered for this type only
    if exc.timeout:  # the database did not answer in time (SHOP_MONGODB_OPERATION_TIMEOUT_SECONDS)
        return await _database_unavailable(request, exc)
    return await _unexpected_error(request, exc)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error", extra={"path": request.url.path})
    return problem_response(500, "internal_error", "Internal error", "an unexpected error occurred", request)


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error answer problem+json with a stable `code`."""
    app.add_exception_handler(ContractError, _contract_error)
    app.add_exception_handler(AuthError, _auth_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ConnectionFailure, _database_unavailable)
    app.add_exception_handler(PyMongoError, _database_error)
    app.add_exception_handler(StoreUnavailableError, _database_unavailable)
    app.add_exception_handler(Exception, _unexpected_error)
