"""How a saga's state becomes the operations API's view: secrets masked, steps and position derived."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from ecommerce_saga.operations.models import OperatorCommand, SagaDetail, SagaSummary
from ecommerce_saga.operations.views import current_position, detail, is_secret_key, mask_secrets
from ecommerce_saga.saga import AttemptStatus, ErrorInfo, HistoryEntry, Phase, SagaState, SagaStatus
from ecommerce_saga.saga.testing import InMemoryLedger, scripted_saga

SAGA = scripted_saga("order", ["reserve", "charge", "ship"], InMemoryLedger())


@pytest.mark.parametrize(
    "key", ["payment_token", "token", "Client-Secret", "password", "card_number", "CVV", "apiKey", "api_key"]
)
def test_treats_a_key_as_secret_when_it_names_a_credential(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize("key", ["order_id", "total_cents", "last4", "brand", "shipping_address"])
def test_keeps_a_key_when_it_names_no_credential(key: str) -> None:
    assert not is_secret_key(key)


def test_masks_secret_values_at_any_depth_when_rendering_data() -> None:
    data: dict[str, Any] = {
        "payment_token": "tok_1",
        "lines": [{"sku": "a", "auth": {"access_token": "x"}}],
        "nested": {"password": {"even": "objects"}},
        "total_cents": 100,
    }

    assert mask_secrets(data) == {
        "payment_token": "***",
        "lines": [{"sku": "a", "auth": {"access_token": "***"}}],
        "nested": {"password": "***"},
        "total_cents": 100,
    }
    assert data["payment_token"] == "tok_1"  # the saga's own state is untouched


def _entry(step: str, phase: Phase, status: AttemptStatus, attempt: int = 1) -> HistoryEntry:
    error = ErrorInfo(type="X", message="boom", code="x.boom") if status is AttemptStatus.FAILED else None
    return HistoryEntry(step=step, phase=phase, attempt=attempt, status=status, error=error)


def test_derives_each_steps_status_when_a_saga_is_retrying_a_step() -> None:
    state = SagaState(
        saga_id="s-1",
        saga_type="order",
        current_step=1,
        history=[
            _entry("reserve", Phase.ACTION, AttemptStatus.SUCCEEDED),
            _entry("charge", Phase.ACTION, AttemptStatus.FAILED),
            _entry("charge", Phase.ACTION, AttemptStatus.STARTED, attempt=2),
        ],
    )

    view = detail(state, SAGA)

    assert [(s.name, s.status, s.attempts) for s in view.steps] == [
        ("reserve", "SUCCEEDED", 1),
        ("charge", "RUNNING", 2),
        ("ship", "PENDING", 0),
    ]
    assert (view.current_step, view.current_phase) == ("charge", Phase.ACTION)
    assert view.actions.cancel and not view.actions.retry


def test_reports_the_compensation_in_flight_when_a_saga_compensates() -> None:
    state = SagaState(
        saga_id="s-1",
        saga_type="order",
        status=SagaStatus.COMPENSATING,
        current_step=2,
        compensation_plan=["charge", "reserve"],
        compensation_position=1,
        history=[
            _entry("reserve", Phase.ACTION, AttemptStatus.SUCCEEDED),
            _entry("charge", Phase.ACTION, AttemptStatus.SUCCEEDED),
            _entry("ship", Phase.ACTION, AttemptStatus.FAILED),
            _entry("charge", Phase.COMPENSATION, AttemptStatus.SUCCEEDED),
            _entry("reserve", Phase.COMPENSATION, AttemptStatus.STARTED),
        ],
    )

    view = detail(state, SAGA)

    assert current_position(state, SAGA) == ("reserve", Phase.COMPENSATION)
    assert [s.status for s in view.steps] == ["COMPENSATING", "COMPENSATED", "FAILED"]
    assert (view.compensation.done, view.compensation.pending) == (["charge"], ["reserve"])
    assert not view.actions.cancel


def test_shows_no_steps_when_the_saga_type_is_not_run_here() -> None:
    state = SagaState(
        saga_id="s-1", saga_type="elsewhere", history=[_entry("a", Phase.ACTION, AttemptStatus.STARTED)]
    )

    view = detail(state, None)

    assert view.steps == []
    assert (view.current_step, view.actions.cancel) == ("a", False)


@pytest.mark.parametrize("model", [SagaSummary, SagaDetail, OperatorCommand])
def test_documents_examples_that_the_model_accepts_when_the_schema_is_published(
    model: type[BaseModel],
) -> None:
    examples = model.model_json_schema()["examples"]

    assert examples
    for example in examples:
        model.model_validate(example)
