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
from pydantic import BaseModel

from ecommerce_saga.saga import StoreUnavailableError, current_step
from ecommerce_saga.shared.contracts import ContractError, ServiceUnavailableError
from ecommerce_saga.web.problems import DATABASE_UNAVAILABLE

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
        http: An `httpx.AsyncClient` whose `base_url` is the module's URL (pooled, with timeouts).
        token: The service token, sent as a bearer token.
        trace_headers: Returns headers that propagate the current trace (e.g. `traceparent`).
    """

    def __init__(
        self, name: str, http: httpx.AsyncClient, token: str, trace_headers: TraceHeaders = _no_trace_headers
    ) -> None:
        self.name = name
        self._http = http
        self._auth = {"Authorization": f"Bearer {token}"}
        self._trace_headers = trace_headers

    async def call(
        self,
        method: str,
        path: str,
        model: type[M],
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> M:
        """Send a request and parse the answer as `model`, raising the contract error it carries."""
        headers = {**self._auth, **self._trace_headers()}
        step = current_step()
        if step is not None:
            headers[SAGA_ID_HEADER] = step.saga_id
        query = {key: value for key, value in (params or {}).items() if value is not None}
        try:
            response = await self._http.request(method, path, json=json, params=query, headers=headers)
        except httpx.TransportError as exc:
            raise ServiceUnavailableError(f"{self.name} service unreachable: {type(exc).__name__}") from exc
        if response.status_code >= 400:
            raise self._error(response)
        return model.model_validate_json(response.content)

    def _error(self, response: httpx.Response) -> ContractError | StoreUnavailableError:
        try:
            problem = response.json()
        except ValueError:
            problem = {}
        code = problem.get("code") if isinstance(problem, dict) else None
        detail = str(problem.get("detail") or response.reason_phrase) if isinstance(problem, dict) else ""
        if response.status_code == 503 and code == DATABASE_UNAVAILABLE:
            return StoreUnavailableError(f"the {self.name} service's database is unavailable")
        error_class = ContractError.registry.get(code or "")
        if response.status_code >= 500 and (error_class is None or not error_class.retryable):
            # a crash, a proxy's 502/504, or an overloaded service: worth trying again later
            return ServiceUnavailableError(f"{self.name} service answered {response.status_code}: {detail}")
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


def http_client(base_url: str, timeout: float, max_connections: int = 100) -> httpx.AsyncClient:
    """A pooled async client with connect/read timeouts for service-to-service calls."""
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 2.0)),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
    )
