"""Calling another module over HTTP: auth, tracing headers, timeouts, and errors mapped back.

A module's `client.py` implements its contract with a `ServiceClient`. Business errors come
back as problem+json with a stable `code` and are raised again as the same `ContractError`
class, so the saga behaves the same in one process or five. Transport failures (connection
refused, timeouts) and 5xx answers become a retryable `ServiceUnavailableError`, which the saga
engine retries with backoff — except a 503 `database_unavailable`: the module's database is down
or stalled, which is a store outage (`StoreUnavailableError`), as it is for a module in the same
process: the saga pauses rather than using up its retries, and a request answers 503.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import httpx
import pydantic_core
from pydantic import BaseModel

from ecommerce_saga.saga import StoreUnavailableError, current_step
from ecommerce_saga.shared.contracts import ContractError, ServiceUnavailableError
from ecommerce_saga.web.problems import DATABASE_UNAVAILABLE
from ecommerce_saga.web.transports import AiohttpTransport, Answer, HttpxTransport, Transport, TransportError

M = TypeVar("M", bound=BaseModel)

SAGA_ID_HEADER = "X-Saga-Id"
TraceHeaders = Callable[[], Mapping[str, str]]


def _no_trace_headers() -> Mapping[str, str]:
    return {}


class RemoteError(ContractError):
    """A problem answer whose code this process does not know."""

    code = "remote_error"


class ServiceClient:
    """A pooled HTTP client for one remote module.

    Args:
        name: The module's name, for error messages.
        http: How requests reach the module (`http_client`: pooled, with timeouts), or an
            `httpx.AsyncClient` whose `base_url` is the module's URL (in-process apps, tests).
        token: The service token, sent as a bearer token.
        trace_headers: Returns headers that propagate the current trace (e.g. `traceparent`).
    """

    def __init__(
        self,
        name: str,
        http: Transport | httpx.AsyncClient,
        token: str,
        trace_headers: TraceHeaders = _no_trace_headers,
    ) -> None:
        self.name = name
        self._http = HttpxTransport(http) if isinstance(http, httpx.AsyncClient) else http
        self._auth = {"Authorization": f"Bearer {token}"}
        self._trace_headers = trace_headers

    async def call(
        self,
        method: str,
        path: str,
        model: type[M],
        *,
        json: BaseModel | Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> M:
        """Send a request and parse the answer as `model`, raising the contract error it carries.

        `json` is the body: a model is serialized by pydantic straight to JSON bytes, as the
        router's response is (no dict, no `json.dumps`).
        """
        headers = {**self._auth, **self._trace_headers()}
        step = current_step()
        if step is not None:
            headers[SAGA_ID_HEADER] = step.saga_id
        body = None
        if json is not None:
            body = (
                json.model_dump_json().encode()
                if isinstance(json, BaseModel)
                else pydantic_core.to_json(json)
            )
            headers["Content-Type"] = "application/json"
        try:
            answer = await self._http.send(method, path, body=body, query=_query(params), headers=headers)
        except TransportError as exc:
            # chained to the client library's own error, as it was raised
            raise ServiceUnavailableError(f"{self.name} service unreachable: {exc.kind}") from (
                exc.__cause__ or exc
            )
        if answer.status >= 400:
            raise self._error(answer)
        return model.model_validate_json(answer.body)

    def _error(self, answer: Answer) -> ContractError | StoreUnavailableError:
        try:
            problem = pydantic_core.from_json(answer.body)
        except ValueError:
            problem = {}
        code = problem.get("code") if isinstance(problem, dict) else None
        detail = str(problem.get("detail") or answer.reason) if isinstance(problem, dict) else ""
        if answer.status == 503 and code == DATABASE_UNAVAILABLE:
            return StoreUnavailableError(f"the {self.name} service's database is unavailable")
        error_class = ContractError.registry.get(code or "")
        if answer.status >= 500 and (error_class is None or not error_class.retryable):
            # a crash, a proxy's 502/504, or an overloaded service: worth trying again later
            return ServiceUnavailableError(f"{self.name} service answered {answer.status}: {detail}")
        error_class = error_class or RemoteError
        extra = (
            {k: v for k, v in problem.items() if k not in _PROBLEM_FIELDS}
            if isinstance(problem, dict)
            else {}
        )
        return error_class(detail, **extra)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()


_PROBLEM_FIELDS = {"type", "title", "status", "code", "detail", "instance", "invalid_params"}


def _query(params: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """Query parameters as strings (booleans as ``true``/``false``); None values left out."""
    query = []
    for key, value in (params or {}).items():
        for item in value if isinstance(value, list | tuple) else (value,):
            if item is not None:
                query.append((key, str(item).lower() if isinstance(item, bool) else str(item)))
    return query


def http_client(base_url: str, timeout: float, max_connections: int = 100) -> Transport:
    """Pooled, kept-alive connections to a module, with connect/read timeouts: service-to-service calls."""
    return AiohttpTransport(base_url, timeout, max_connections)
