"""`ServiceClient` against a scripted remote (`httpx.MockTransport`): errors mapped back, headers, params.

What the client raises is what the saga engine sees in a split deployment, so the last tests
run it inside a saga: a 5xx or a dead connection is retried, a business error is compensated.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

import ecommerce_saga.modules.inventory.contract as inventory
import ecommerce_saga.modules.notification.contract as notification
import ecommerce_saga.modules.order.contract as order
import ecommerce_saga.modules.payment.contract as payment
import ecommerce_saga.modules.shipping.contract as shipping
from ecommerce_saga.saga import (
    AttemptStatus,
    Phase,
    RetryPolicy,
    Saga,
    SagaEngine,
    SagaState,
    SagaStatus,
    SagaStep,
    StepContext,
    StoreUnavailableError,
)
from ecommerce_saga.saga.errors import is_retryable
from ecommerce_saga.saga.stores.memory import InMemorySagaStore
from ecommerce_saga.shared.contracts import (
    ConflictError,
    ContractError,
    InvalidRequestError,
    NotFoundError,
    ServiceUnavailableError,
)
from ecommerce_saga.web.service_client import SAGA_ID_HEADER, RemoteError, ServiceClient

TOKEN = "service-secret"
Answer = httpx.Response | Exception

MODULE_ERRORS: list[tuple[type[ContractError], dict[str, Any]]] = [
    (inventory.InventoryUnavailableError, {}),
    (inventory.ProductNotFoundError, {}),
    (inventory.ProductExistsError, {}),
    (inventory.ReservationReleasedError, {}),
    (payment.PaymentDeclinedError, {"decline_code": "insufficient_funds"}),
    (payment.PaymentMethodNotFoundError, {}),
    (payment.PaymentNotFoundError, {}),
    (payment.PaymentVoidedError, {}),
    (payment.PaymentGatewayUnavailableError, {}),
    (shipping.ShippingUnavailableError, {"country": "BR"}),
    (shipping.ShipmentCancelledError, {}),
    (shipping.ShipmentNotFoundError, {}),
    (notification.NotificationNotFoundError, {}),
    (notification.NotificationDeliveryError, {}),
    (notification.OutboxMessageNotFoundError, {}),
    (order.OrderNotFoundError, {}),
    (order.PriceChangedError, {"total_cents": 4999, "currency": "USD"}),
    (order.IdempotencyKeyReusedError, {}),
    (order.OrderNotCancellableError, {}),
    (NotFoundError, {}),
    (ConflictError, {}),
    (InvalidRequestError, {}),
    (ServiceUnavailableError, {}),
]


class Echo(BaseModel):
    """What the scripted remote answers on success."""

    ok: bool


class ScriptedRemote:
    """A remote module that gives `answers` in turn (the last one from then on), keeping each request."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers) or [httpx.Response(200, json={"ok": True})]
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def problem(error: type[ContractError], detail: str = "it went wrong", **extra: Any) -> httpx.Response:
    """The problem+json answer the shop's error handler gives for `error`."""
    body = {
        "type": f"https://ecommerce-saga.dev/problems/{error.code}", "title": error.title,
        "status": error.status, "code": error.code, "detail": detail, "instance": "/api/x", **extra,
    }  # fmt: skip
    return httpx.Response(error.status, json=body, headers={"content-type": "application/problem+json"})


@pytest.fixture
async def connect() -> AsyncIterator[Callable[[ScriptedRemote], ServiceClient]]:
    clients: list[ServiceClient] = []

    def make(remote: ScriptedRemote, **options: Any) -> ServiceClient:
        http = httpx.AsyncClient(transport=httpx.MockTransport(remote), base_url="http://inventory")
        clients.append(ServiceClient("inventory", http, TOKEN, **options))
        return clients[-1]

    yield make
    for client in clients:
        await client.aclose()


async def call(client: ServiceClient, **options: Any) -> Echo:
    return await client.call("POST", "/api/inventory/reserve", Echo, **options)


@pytest.mark.parametrize(("error", "extra"), MODULE_ERRORS, ids=[e.code for e, _ in MODULE_ERRORS])
async def test_raises_same_error_class_with_its_fields_when_remote_answers_its_problem(
    connect: Callable[[ScriptedRemote], ServiceClient], error: type[ContractError], extra: dict[str, Any]
) -> None:
    client = connect(ScriptedRemote(problem(error, "the remote said no", **extra)))

    with pytest.raises(error) as caught:
        await call(client)

    assert type(caught.value) is error
    assert caught.value.detail == "the remote said no"
    assert caught.value.extra == extra
    assert caught.value.retryable is error.retryable


async def test_keeps_decline_code_when_payment_is_declined_remotely(
    connect: Callable[[ScriptedRemote], ServiceClient],
) -> None:
    client = connect(ScriptedRemote(problem(payment.PaymentDeclinedError, decline_code="expired_card")))

    with pytest.raises(payment.PaymentDeclinedError) as caught:
        await call(client)

    assert caught.value.decline_code == "expired_card"


def test_lists_every_module_error_when_mapping_is_tested() -> None:
    defined = {
        cls
        for cls in ContractError.registry.values()
        if cls.__module__.startswith("ecommerce_saga.modules.") and cls.__module__.endswith(".contract")
    }

    assert defined <= {error for error, _ in MODULE_ERRORS}


async def test_raises_remote_error_with_its_fields_when_code_is_unknown(
    connect: Callable[[ScriptedRemote], ServiceClient],
) -> None:
    body = {
        "title": "Teapot", "status": 418, "code": "kitchen.teapot", "detail": "short and stout",
        "invalid_params": [{"name": "x", "reason": "y"}], "spout": "left",
    }  # fmt: skip
    client = connect(ScriptedRemote(httpx.Response(418, json=body)))

    with pytest.raises(RemoteError) as caught:
        await call(client)

    assert caught.value.detail == "short and stout"
    assert caught.value.extra == {"spout": "left"}
    assert caught.value.retryable is False


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_raises_retryable_service_unavailable_when_remote_answers_5xx(
    connect: Callable[[ScriptedRemote], ServiceClient], status: int
) -> None:
    crash = {"title": "Internal error", "status": status, "code": "internal_error", "detail": "boom"}
    client = connect(ScriptedRemote(httpx.Response(status, json=crash)))

    with pytest.raises(ServiceUnavailableError) as caught:
        await call(client)

    assert type(caught.value) is ServiceUnavailableError
    assert caught.value.retryable is True
    assert str(status) in caught.value.detail


async def test_raises_store_unavailable_when_remote_says_its_database_is_unavailable(
    connect: Callable[[ScriptedRemote], ServiceClient],
) -> None:
    stalled = {"title": "Service unavailable", "status": 503, "code": "database_unavailable", "detail": "x"}
    client = connect(ScriptedRemote(httpx.Response(503, json=stalled, headers={"Retry-After": "5"})))

    with pytest.raises(StoreUnavailableError, match="inventory service's database"):
        await call(client)


async def test_raises_retryable_service_unavailable_when_5xx_carries_a_business_code(
    connect: Callable[[ScriptedRemote], ServiceClient],
) -> None:
    odd = problem(inventory.InventoryUnavailableError)
    client = connect(ScriptedRemote(httpx.Response(503, content=odd.content, headers=odd.headers)))

    with pytest.raises(ServiceUnavailableError) as caught:
        await call(client)

    assert type(caught.value) is ServiceUnavailableError
    assert is_retryable(caught.value)


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("connection refused"),
        httpx.ConnectTimeout("timed out connecting"),
        httpx.ReadTimeout("timed out reading"),
        httpx.RemoteProtocolError("server disconnected"),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_raises_service_unavailable_when_transport_fails(
    connect: Callable[[ScriptedRemote], ServiceClient], failure: httpx.TransportError
) -> None:
    client = connect(ScriptedRemote(failure))

    with pytest.raises(ServiceUnavailableError) as caught:
        await call(client)

    assert caught.value.retryable is True
    assert type(failure).__name__ in caught.value.detail
    assert caught.value.__cause__ is failure


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (httpx.Response(404, text="<html>no such page</html>"), RemoteError),
        (httpx.Response(409, json=["not", "a", "problem"]), RemoteError),
        (httpx.Response(502, text="<html>Bad Gateway</html>"), ServiceUnavailableError),
    ],
    ids=["404-html", "409-json-list", "502-html"],
)
async def test_raises_by_status_when_error_body_is_not_a_problem(
    connect: Callable[[ScriptedRemote], ServiceClient], answer: httpx.Response, expected: type[ContractError]
) -> None:
    client = connect(ScriptedRemote(answer))

    with pytest.raises(expected) as caught:
        await call(client)

    assert type(caught.value) is expected
    assert caught.value.extra == {}


async def test_uses_reason_phrase_as_detail_when_error_body_is_not_json(
    connect: Callable[[ScriptedRemote], ServiceClient],
) -> None:
    client = connect(ScriptedRemote(httpx.Response(404, text="nothing here")))

    with pytest.raises(RemoteError) as caught:
        await call(client)

    assert caught.value.detail == "Not Found"


async def test_sends_token_json_and_trace_headers_and_parses_answer_when_calling(
    connect: Callable[..., ServiceClient],
) -> None:
    remote = ScriptedRemote(httpx.Response(200, json={"ok": True}))
    client = connect(remote, trace_headers=lambda: {"traceparent": "00-abc-def-01"})

    answer = await call(client, json={"order_id": "ord_1"})

    assert answer == Echo(ok=True)
    [request] = remote.requests
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["traceparent"] == "00-abc-def-01"
    assert SAGA_ID_HEADER not in request.headers
    assert request.url.path == "/api/inventory/reserve"
    assert json.loads(request.content) == {"order_id": "ord_1"}


async def test_drops_none_values_when_sending_query_params(
    connect: Callable[[ScriptedRemote], ServiceClient],
) -> None:
    remote = ScriptedRemote()
    client = connect(remote)

    await client.call("GET", "/api/inventory", Echo, params={"category": "desk", "inStock": None, "limit": 5})

    assert dict(remote.requests[0].url.params) == {"category": "desk", "limit": "5"}


# --- inside a saga


FAST = RetryPolicy(initial_interval=0.001, maximum_interval=0.005, maximum_attempts=3)


async def run_saga(client: ServiceClient, saga_id: str) -> SagaState:
    """Run a one-step saga whose step calls `client`, and wait for its outcome."""

    async def reserve(ctx: StepContext) -> dict[str, Any]:
        return (await call(client)).model_dump()

    engine = SagaEngine(
        InMemorySagaStore(), [Saga("probe", [SagaStep("reserve", reserve, retry=FAST)])], observers=[]
    )
    try:
        await engine.start("probe", {}, saga_id=saga_id)
        return await engine.wait(saga_id, timeout=5)
    finally:
        await engine.stop()


def attempts(state: SagaState) -> list[tuple[AttemptStatus, str | None]]:
    return [(e.status, e.error.code if e.error else None) for e in state.history if e.phase is Phase.ACTION]


async def test_sends_saga_id_header_when_called_inside_a_saga_step(
    connect: Callable[[ScriptedRemote], ServiceClient],
) -> None:
    remote = ScriptedRemote()

    state = await run_saga(connect(remote), "saga-42")

    assert state.status is SagaStatus.COMPLETED
    assert [r.headers[SAGA_ID_HEADER] for r in remote.requests] == ["saga-42"]
    assert remote.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize(
    "error", [error for error, _ in MODULE_ERRORS], ids=[e.code for e, _ in MODULE_ERRORS]
)
def test_engine_retries_only_unavailability_when_classifying_contract_errors(
    error: type[ContractError],
) -> None:
    assert is_retryable(error("x")) is issubclass(error, ServiceUnavailableError)


def test_engine_retries_service_unavailable_but_not_inventory_unavailable_when_classifying() -> None:
    assert is_retryable(ServiceUnavailableError("inventory service answered 503"))
    assert not is_retryable(inventory.InventoryUnavailableError("not enough stock of sku-1"))


@pytest.mark.parametrize(
    "outage",
    [httpx.Response(503, json={"code": "service_unavailable"}), httpx.ConnectError("refused")],
    ids=["503", "connection-refused"],
)
async def test_retries_step_then_completes_when_remote_is_unavailable_once(
    connect: Callable[[ScriptedRemote], ServiceClient], outage: Answer
) -> None:
    remote = ScriptedRemote(outage, httpx.Response(200, json={"ok": True}))

    state = await run_saga(connect(remote), "saga-retried")

    assert state.status is SagaStatus.COMPLETED
    assert attempts(state) == [
        (AttemptStatus.FAILED, "service_unavailable"),
        (AttemptStatus.SUCCEEDED, None),
    ]
    assert [r.headers[SAGA_ID_HEADER] for r in remote.requests] == ["saga-retried"] * 2


async def test_compensates_without_retrying_when_remote_refuses_for_business_reason(
    connect: Callable[[ScriptedRemote], ServiceClient],
) -> None:
    remote = ScriptedRemote(problem(inventory.InventoryUnavailableError, "not enough stock of sku-1"))

    state = await run_saga(connect(remote), "saga-refused")

    assert state.status is SagaStatus.COMPENSATED
    assert attempts(state) == [(AttemptStatus.FAILED, "inventory.unavailable")]
    assert state.failure is not None
    assert (state.failure.retryable, state.failure.message) == (False, "not enough stock of sku-1")
    assert len(remote.requests) == 1
