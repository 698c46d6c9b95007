"""Operator actions: resume a parked saga, cancel a running one.

Each takes the saga's lease by force (whoever holds it), but only if the saga is still in the
state the action was checked against, so a refused action never steals a saga. The engine owns
the sagas it drives: it stops its own run of a saga before a cancel, and starts the run after
either action (see `SagaEngine.resume`, `SagaEngine.cancel`).
"""

from __future__ import annotations

from ecommerce_saga.saga import transitions
from ecommerce_saga.saga.errors import SagaConflictError
from ecommerce_saga.saga.leased_store import LeasedStore
from ecommerce_saga.saga.observers import EventKind, Notifier
from ecommerce_saga.saga.state import SagaState, SagaStatus
from ecommerce_saga.saga.steps import StepKind
from ecommerce_saga.saga.store import SagaExpectation


def check_cancellable(worker: LeasedStore, state: SagaState) -> None:
    """Refuse to cancel a saga that is not running or has passed its point of no return.

    Raises:
        SagaConflictError: If the saga cannot be cancelled.
        UnknownDefinitionError: If the running saga's definition is not registered here.
    """
    if state.status is not SagaStatus.RUNNING:
        raise SagaConflictError(
            f"saga {state.saga_id} is {state.status}; only running sagas can be cancelled"
        )
    step = worker.definition_of(state).steps[state.current_step]
    if step.kind is not StepKind.COMPENSATABLE:
        raise SagaConflictError(f"saga {state.saga_id} has passed its point of no return ({step.name})")


async def resume(
    worker: LeasedStore, notifier: Notifier, saga_id: str, *, actor: str, reason: str
) -> SagaState:
    """Reopen a parked saga where it stopped, with a fresh retry budget; the caller then runs it.

    Raises:
        SagaNotFoundError: If there is no such saga.
        SagaConflictError: If the saga is not parked.
        UnknownDefinitionError: If this worker has no definition of the saga's version.
    """
    seen = await worker.get(saga_id)
    if seen.status is not SagaStatus.REQUIRES_ATTENTION:
        raise SagaConflictError(f"saga {saga_id} is not parked; only parked sagas resume")
    definition = worker.definition_of(seen)  # a saga this worker cannot run stays where it is
    state = await worker.take_over(saga_id, SagaExpectation(SagaStatus.REQUIRES_ATTENTION))
    if state is None:
        raise SagaConflictError(f"saga {saga_id} is not parked; only parked sagas resume")
    transitions.resume_parked(definition, state, actor=actor, reason=reason, worker=worker.worker_id)
    state = await worker.save(state)
    notifier.emit(EventKind.OPERATOR_ACTION, state, detail=f"resume by {actor}: {reason}")
    return state


async def cancellable(worker: LeasedStore, saga_id: str) -> SagaState:
    """The saga, if it can be cancelled now.

    Raises:
        SagaNotFoundError: If there is no such saga.
        SagaConflictError: If the saga is not running, or has passed its point of no return.
    """
    seen = await worker.get(saga_id)
    check_cancellable(worker, seen)
    return seen


async def cancel(
    worker: LeasedStore, notifier: Notifier, seen: SagaState, *, actor: str, reason: str
) -> SagaState:
    """Cancel the saga last `seen` running, once no run of it is left here; the caller then runs it.

    Raises:
        SagaConflictError: If the saga moved on since it was seen, or is no longer cancellable.
    """
    saga_id = seen.saga_id
    state = await worker.take_over(saga_id, SagaExpectation(SagaStatus.RUNNING, seen.current_step))
    if state is None:  # it moved on meanwhile
        await cancellable(worker, saga_id)
        raise SagaConflictError(f"saga {saga_id} changed while it was being cancelled; try again")
    definition = worker.definition_of(state)
    transitions.cancel_running(definition, state, actor=actor, reason=reason, worker=worker.worker_id)
    state = await worker.save(state)
    notifier.emit(EventKind.OPERATOR_ACTION, state, detail=f"cancel by {actor}: {reason}")
    notifier.transition(state)
    return state
