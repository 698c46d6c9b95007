"""Turns the engine's `SagaState` into the operations API's documents, masking secrets on the way."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ecommerce_saga.operations.models import (
    CompensationView,
    ErrorView,
    FailureView,
    HistoryView,
    SagaActions,
    SagaDetail,
    SagaSummary,
    StepView,
)
from ecommerce_saga.saga import AttemptStatus, HistoryEntry, Phase, Saga, SagaState, SagaStatus, StepKind
from ecommerce_saga.shared.clock import from_epoch_ms

MASK = "***"
_SECRET_MARKERS = (
    "token",
    "secret",
    "password",
    "passwd",
    "card_number",
    "cvv",
    "cvc",
    "api_key",
    "apikey",
    "authorization",
    "credential",
    "private_key",
)


def is_secret_key(key: str) -> bool:
    """True for keys whose values must never be echoed (``payment_token``, ``api_key``, ...)."""
    lowered = key.lower().replace("-", "_")
    return any(marker in lowered for marker in _SECRET_MARKERS)


def mask_secrets(value: Any) -> Any:
    """A copy of `value` with the values of secret-like keys replaced by ``***``, at any depth."""
    if isinstance(value, Mapping):
        return {
            str(key): MASK if is_secret_key(str(key)) else mask_secrets(item) for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [mask_secrets(item) for item in value]
    return value


def _from_ms(epoch_ms: int | None) -> datetime | None:
    return from_epoch_ms(epoch_ms) if epoch_ms else None


def _compensating(state: SagaState) -> bool:
    return state.status is SagaStatus.COMPENSATING or (
        state.status is SagaStatus.REQUIRES_ATTENTION and state.parked_from is SagaStatus.COMPENSATING
    )


def current_position(state: SagaState, definition: Saga[Any] | None) -> tuple[str | None, Phase | None]:
    """The step in flight (or next to run) and its phase; (None, None) once the saga is final."""
    if state.status.is_final:
        return None, None
    if _compensating(state):
        plan, position = state.compensation_plan, state.compensation_position
        return (plan[position], Phase.COMPENSATION) if position < len(plan) else (None, None)
    if definition is not None and state.current_step < len(definition.steps):
        return definition.steps[state.current_step].name, Phase.ACTION
    entry = state.open_entry()
    return (entry.step, entry.phase) if entry is not None else (None, None)


def summary(state: SagaState, definition: Saga[Any] | None) -> SagaSummary:
    """The list view of a saga."""
    step, phase = current_position(state, definition)
    return SagaSummary(
        saga_id=state.saga_id,
        saga_type=state.saga_type,
        status=state.status,
        correlation_id=state.correlation_id,
        current_step=step,
        current_phase=phase,
        created_at=state.created_at,
        updated_at=state.updated_at,
        failure_code=state.failure.code if state.failure else None,
        failure_message=state.failure.message if state.failure else None,
        lease_owner=state.lease_owner,
        lease_expires_at=_from_ms(state.lease_expires_at_ms),
        parked=state.status is SagaStatus.REQUIRES_ATTENTION,
    )


def _history(entry: HistoryEntry) -> HistoryView:
    duration = entry.duration_seconds
    error = entry.error
    return HistoryView(
        step=entry.step,
        phase=entry.phase,
        attempt=entry.attempt,
        status=entry.status,
        started_at=entry.started_at,
        ended_at=entry.ended_at,
        duration_ms=None if duration is None else round(duration * 1000, 3),
        error=ErrorView(type=error.type, code=error.code, message=error.message) if error else None,
        worker=entry.worker,
        actor=entry.actor,
        reason=entry.reason,
    )


def _step_status(entries: list[HistoryEntry]) -> str:
    compensations = [e for e in entries if e.phase is Phase.COMPENSATION]
    if any(e.status is AttemptStatus.SUCCEEDED for e in compensations):
        return "COMPENSATED"
    if compensations:
        return "COMPENSATING"
    actions = [e for e in entries if e.phase is Phase.ACTION]
    if not actions:
        return "PENDING"
    return {
        AttemptStatus.SUCCEEDED: "SUCCEEDED",
        AttemptStatus.STARTED: "RUNNING",
        AttemptStatus.FAILED: "FAILED",
    }[actions[-1].status]


def _steps(state: SagaState, definition: Saga[Any] | None) -> list[StepView]:
    if definition is None:
        return []
    views = []
    for step in definition.steps:
        entries = [e for e in state.history if e.step == step.name and e.phase is not Phase.OPERATOR]
        views.append(
            StepView(
                name=step.name,
                kind=step.kind.value,
                compensatable=step.compensation is not None,
                status=_step_status(entries),
                attempts=sum(1 for e in entries if e.phase is Phase.ACTION),
            )
        )
    return views


def _actions(state: SagaState, definition: Saga[Any] | None) -> SagaActions:
    cancellable = (
        state.status is SagaStatus.RUNNING
        and definition is not None
        and state.current_step < len(definition.steps)
        and definition.steps[state.current_step].kind is StepKind.COMPENSATABLE
    )
    return SagaActions(retry=state.status is SagaStatus.REQUIRES_ATTENTION, cancel=cancellable)


def detail(state: SagaState, definition: Saga[Any] | None) -> SagaDetail:
    """The full view of a saga: state, lease, masked input and outputs, plan, steps and history."""
    plan, position = state.compensation_plan, state.compensation_position
    failure = state.failure
    return SagaDetail(
        **summary(state, definition).model_dump(),
        version=state.version,
        fencing_token=state.fencing_token,
        parked_from=state.parked_from,
        deadline_at=_from_ms(state.deadline_at_ms),
        failure=FailureView(
            type=failure.type, code=failure.code, message=failure.message, retryable=failure.retryable
        )
        if failure
        else None,
        input=mask_secrets(state.input),
        outputs=mask_secrets(state.outputs),
        steps=_steps(state, definition),
        compensation=CompensationView(
            plan=list(plan),
            position=position,
            total=len(plan),
            done=list(plan[:position]),
            pending=list(plan[position:]),
        ),
        actions=_actions(state, definition),
        history=[_history(entry) for entry in state.history],
    )
