"""How a saga's state changes: pure functions from a `Saga` definition and a `SagaState` to the next state.

The engine runs a step, calls one of these to record what happened and decide what comes next,
and then saves the state (write-ahead: the next attempt is recorded before it is made). Nothing
here awaits, touches the store or reads the clock, except `utcnow` for history timestamps and
the ``now_ms`` callable the engine hands in; so each rule can be unit-tested on a bare state.

The rules that decide between compensating and parking live here: a failure is undone in
reverse order unless the saga has committed (a retriable step failed, a pivot's outcome is
unknown, or the saga is already past its pivot), in which case it parks for an operator.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import timedelta
from types import MappingProxyType
from typing import Any

from ecommerce_saga.saga.definition import Saga
from ecommerce_saga.saga.errors import ErrorCode, error_code, is_retryable
from ecommerce_saga.saga.state import (
    AttemptStatus,
    ErrorInfo,
    HistoryEntry,
    Phase,
    SagaState,
    SagaStatus,
    utcnow,
)
from ecommerce_saga.saga.steps import ON_COMPENSATED, SagaStep, StepContext, StepKind

INTERRUPTED = ErrorInfo(
    type="WorkerLost",
    message="the worker running this attempt stopped before recording its outcome",
    code=ErrorCode.INTERRUPTED,
)
"""The failure recorded on an attempt whose worker stopped before recording its outcome."""


def error_info(exc: BaseException, timeout: float) -> ErrorInfo:
    """The `ErrorInfo` recorded for an attempt that raised `exc` (or timed out after `timeout` s)."""
    if isinstance(exc, TimeoutError):
        return ErrorInfo(type="TimeoutError", message=f"timed out after {timeout:g}s", code=ErrorCode.TIMEOUT)
    return ErrorInfo(
        type=type(exc).__name__,
        message=str(exc) or type(exc).__name__,
        code=error_code(exc),
        retryable=is_retryable(exc),
    )


def deadline_exceeded() -> ErrorInfo:
    """The failure recorded when a saga's deadline stops it."""
    return ErrorInfo(
        type="DeadlineExceeded",
        message="the saga's deadline passed",
        code=ErrorCode.DEADLINE_EXCEEDED,
        retryable=False,
    )


def cancelled(reason: str) -> ErrorInfo:
    """The failure recorded when an operator cancels a saga for `reason`."""
    return ErrorInfo(type="Cancelled", message=reason, code=ErrorCode.CANCELLED, retryable=False)


# ---------------------------------------------------------------------- history entries


def open_attempt(
    state: SagaState, step: str, phase: Phase, *, worker: str, attempt: int = 1, delay: float = 0.0
) -> HistoryEntry:
    """Append a STARTED attempt of `step` to the history, due `delay` seconds from now."""
    started = utcnow() + timedelta(seconds=delay) if delay else utcnow()
    entry = HistoryEntry(step=step, phase=phase, attempt=attempt, started_at=started, worker=worker)
    state.history.append(entry)
    return entry


def close_attempt(entry: HistoryEntry, status: AttemptStatus, error: ErrorInfo | None = None) -> None:
    """Record the outcome of an attempt (never ending before it started, even if it was scheduled)."""
    entry.status = status
    entry.ended_at = max(utcnow(), entry.started_at)
    entry.error = error


def schedule_retry(state: SagaState, failed: HistoryEntry, *, delay: float, worker: str) -> HistoryEntry:
    """Open the next attempt of the failed attempt's step and phase, due after `delay` seconds."""
    return open_attempt(
        state, failed.step, failed.phase, worker=worker, attempt=failed.attempt + 1, delay=delay
    )


def reopen_interrupted(state: SagaState, *, worker: str) -> bool:
    """Close the attempt left in flight by a stopped worker and open the next; False if there was none."""
    entry = state.open_entry()
    if entry is None:
        return False
    close_attempt(entry, AttemptStatus.FAILED, INTERRUPTED)
    open_attempt(state, entry.step, entry.phase, worker=worker, attempt=entry.attempt + 1)
    return True


def unknown_definition(state: SagaState) -> ErrorInfo:
    """The failure recorded when a saga is parked because no worker runs its definition version."""
    return ErrorInfo(
        type="UnknownDefinition",
        message=(
            f"no worker has run {state.saga_type!r} version {state.runs_on_version} "
            f"(steps {state.definition_fingerprint or 'unrecorded'}); deploy a release that registers it"
        ),
        code=ErrorCode.UNKNOWN_DEFINITION,
        retryable=False,
    )


def park_unrunnable(state: SagaState) -> None:
    """Park a saga no worker can run: close its attempt in flight and stop it for an operator."""
    error = unknown_definition(state)
    entry = state.open_entry()
    if entry is not None:
        close_attempt(entry, AttemptStatus.FAILED, error)
    park(state, state.status, error)


def record_operator(state: SagaState, action: str, *, actor: str, reason: str, worker: str) -> None:
    """Append an operator action (``resume``, ``cancel``) to the history."""
    now = utcnow()
    state.history.append(
        HistoryEntry(
            step=action,
            phase=Phase.OPERATOR,
            status=AttemptStatus.SUCCEEDED,
            started_at=now,
            ended_at=now,
            worker=worker,
            actor=actor,
            reason=reason,
        )
    )


# ---------------------------------------------------------------------- forward


def past_deadline(state: SagaState, now_ms: Callable[[], int]) -> bool:
    """True once the saga's deadline has passed (`now_ms` is read only if the saga has one)."""
    return state.deadline_at_ms is not None and now_ms() >= state.deadline_at_ms


def step_succeeded(
    state: SagaState, step: SagaStep[Any, Any], entry: HistoryEntry, output: dict[str, Any]
) -> None:
    """Close the attempt, keep the step's output, and move past the step."""
    close_attempt(entry, AttemptStatus.SUCCEEDED)
    state.outputs[step.name] = output
    state.current_step += 1


def advance(
    definition: Saga[Any],
    state: SagaState,
    step: SagaStep[Any, Any],
    *,
    worker: str,
    now_ms: Callable[[], int],
) -> None:
    """After `step` succeeded: complete the saga, stop it at its deadline, or open the next step."""
    if state.current_step == len(definition.steps):
        state.status = SagaStatus.COMPLETED
    elif step.kind is StepKind.COMPENSATABLE and past_deadline(state, now_ms):
        # Past the pivot the saga is committed: a deadline must not undo it, only stop it early.
        begin_compensation(definition, state, deadline_exceeded(), include_current=False, worker=worker)
    else:
        open_attempt(state, definition.steps[state.current_step].name, Phase.ACTION, worker=worker)


def is_committed(definition: Saga[Any], state: SagaState, step: SagaStep[Any, Any], error: ErrorInfo) -> bool:
    """True if the failure of `step` (out of retries) must not be undone: an operator decides instead."""
    return (
        step.kind is StepKind.RETRIABLE
        # a pivot whose outcome is unknown may have committed: undoing the steps before it
        # could leave its effect standing alone, so an operator decides
        or (step.kind is StepKind.PIVOT and error.retryable)
        or (
            state.current_step > 0
            and definition.steps[state.current_step - 1].kind is not StepKind.COMPENSATABLE
        )
    )


def stop_forward(
    definition: Saga[Any], state: SagaState, step: SagaStep[Any, Any], error: ErrorInfo, *, worker: str
) -> None:
    """`step` failed for good: park the saga if it has committed, else plan its compensation."""
    if is_committed(definition, state, step, error):
        park(state, SagaStatus.RUNNING, error)
    else:
        begin_compensation(definition, state, error, include_current=error.retryable, worker=worker)


# ---------------------------------------------------------------------- compensation and parking


def begin_compensation(
    definition: Saga[Any], state: SagaState, failure: ErrorInfo, *, include_current: bool, worker: str
) -> None:
    """Plan compensations: succeeded steps in reverse, and the failed step if its outcome is unknown;
    then the saga's `on_compensated` hook, if it has one.

    A saga that does not save every compensatable step's success and that a stopped worker left,
    or an operator stopped, may have done more than its state shows (`may_have_run_ahead`): every
    compensatable step up to its pivot is planned then.
    """
    reach = state.current_step + 1 if include_current else state.current_step
    if may_have_run_ahead(definition, state):
        reach = max(reach, definition.unsaved_reach)
    done = [s.name for s in definition.steps[:reach] if s.compensation is not None]
    state.failure = failure
    state.compensation_plan = list(reversed(done))
    if definition.on_compensated is not None:
        state.compensation_plan.append(ON_COMPENSATED)
    state.compensation_position = 0
    if state.compensation_plan:
        state.status = SagaStatus.COMPENSATING
        open_attempt(state, state.compensation_plan[0], Phase.COMPENSATION, worker=worker)
    else:
        state.status = SagaStatus.COMPENSATED


_LEFT_BEHIND = frozenset({ErrorCode.INTERRUPTED, ErrorCode.CANCELLED, ErrorCode.UNKNOWN_DEFINITION})
"""The codes of an attempt whose worker did not go on to the next step itself: closed at recovery
(`reopen_interrupted`), by an operator's cancel (`cancel_running`), or when parked
(`park_unrunnable`)."""


def may_have_run_ahead(definition: Saga[Any], state: SagaState) -> bool:
    """True if a worker may have begun steps that `state` does not show.

    Only for a definition that saves compensatable steps with the next save
    (`Saga.save_compensatable_steps`): once an attempt of one of those steps was left behind (its
    worker stopped, an operator cancelled it, or it was parked), the worker before may have run
    the following ones without saving them.
    """
    reach = definition.unsaved_reach
    if reach == 0:
        return False
    early = {step.name for step in definition.steps[:reach]}
    return any(
        entry.phase is Phase.ACTION
        and entry.error is not None
        and entry.error.code in _LEFT_BEHIND
        and entry.step in early
        for entry in state.history
    )


def advance_compensation(state: SagaState, *, worker: str) -> None:
    """After a compensation succeeded: finish compensating, or open the next compensation."""
    state.compensation_position += 1
    if state.compensation_position == len(state.compensation_plan):
        state.status = SagaStatus.COMPENSATED
    else:
        open_attempt(
            state, state.compensation_plan[state.compensation_position], Phase.COMPENSATION, worker=worker
        )


def park(state: SagaState, parked_from: SagaStatus, error: ErrorInfo) -> None:
    """Stop the saga for an operator (``REQUIRES_ATTENTION``), remembering where it was."""
    state.status = SagaStatus.REQUIRES_ATTENTION
    state.parked_from = parked_from
    if state.failure is None:
        state.failure = error


# ---------------------------------------------------------------------- operator actions


def resume_parked(definition: Saga[Any], state: SagaState, *, actor: str, reason: str, worker: str) -> None:
    """Record the resume and reopen the step (or compensation) the parked saga stopped at."""
    record_operator(state, "resume", actor=actor, reason=reason, worker=worker)
    state.status = state.parked_from or SagaStatus.COMPENSATING
    state.parked_from = None
    if state.status is SagaStatus.RUNNING:
        step = definition.steps[state.current_step]
        open_attempt(state, step.name, Phase.ACTION, worker=worker)
    else:
        open_attempt(
            state, state.compensation_plan[state.compensation_position], Phase.COMPENSATION, worker=worker
        )


def cancel_running(definition: Saga[Any], state: SagaState, *, actor: str, reason: str, worker: str) -> None:
    """Fail the attempt in flight, record the cancel, and plan compensation of what the saga did.

    The step in flight is compensated too: its action may have taken effect.
    """
    entry = state.open_entry()
    if entry is not None:
        close_attempt(entry, AttemptStatus.FAILED, cancelled(reason))
    record_operator(state, "cancel", actor=actor, reason=reason, worker=worker)
    begin_compensation(definition, state, cancelled(reason), include_current=entry is not None, worker=worker)


# ---------------------------------------------------------------------- what a step sees


def step_context(
    definition: Saga[Any], state: SagaState, step: SagaStep[Any, Any], attempt: int, *, compensating: bool
) -> StepContext[Any]:
    """The context for one attempt of `step`, with copies of the input and outputs (a step cannot
    change them)."""
    suffix = ":compensate" if compensating and step.name != ON_COMPENSATED else ""
    return StepContext(
        saga_id=state.saga_id,
        saga_type=state.saga_type,
        step=step.name,
        attempt=attempt,
        idempotency_key=f"{state.saga_id}:{step.name}{suffix}",
        input=definition.step_input(state.input),
        outputs=MappingProxyType(earlier_outputs(definition, state, step)),
        output=copy.deepcopy(state.outputs.get(step.name)) if compensating else None,
        compensating=compensating,
        failure=state.failure if compensating else None,
    )


def earlier_outputs(definition: Saga[Any], state: SagaState, step: SagaStep[Any, Any]) -> dict[str, Any]:
    """Copies of the outputs of the steps before `step`: a step cannot change them."""
    names = [s.name for s in definition.steps]
    earlier = names[: names.index(step.name)] if step.name in names else names  # the hook sees all
    return {name: copy.deepcopy(state.outputs[name]) for name in earlier if name in state.outputs}
