"""The saga operations API under `/api/sagas`: list, inspect, retry and cancel sagas (operators)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query

from ecommerce_saga.operations.models import (
    OperatorCommand,
    SagaDetail,
    SagaNotCancellableError,
    SagaNotParkedError,
    SagaPage,
    UnknownSagaError,
)
from ecommerce_saga.operations.views import detail, summary
from ecommerce_saga.saga import (
    SagaConflictError,
    SagaEngine,
    SagaNotFoundError,
    SagaQuery,
    SagaState,
    SagaStatus,
    UnknownSagaTypeError,
)
from ecommerce_saga.shared.contracts import MAX_PAGE_SIZE, SAFE_ID_PATTERN, ConflictError
from ecommerce_saga.web.auth import Authenticator
from ecommerce_saga.web.params import IsoDateTime
from ecommerce_saga.web.problems import responses

DEFAULT_ACTOR = "admin"

SagaPath = Annotated[
    str, Path(pattern=SAFE_ID_PATTERN, description="The saga's id", examples=["ord-6f1c2a9b3d4e"])
]
_RETRY_EXAMPLE = {"reason": "payment gateway is back up", "actor": "alice@ops"}
_CANCEL_EXAMPLE = {"reason": "customer called to cancel", "actor": "alice@ops"}


@contextmanager
def _engine_errors(saga_id: str, conflict: type[ConflictError]) -> Iterator[None]:
    """Re-raise the engine's errors as contract errors, which the app renders as problem+json."""
    try:
        yield
    except SagaNotFoundError:
        raise UnknownSagaError(f"no saga {saga_id!r}") from None
    except (SagaConflictError, UnknownSagaTypeError) as exc:
        raise conflict(str(exc)) from None


def build_router(engine: SagaEngine, auth: Authenticator) -> APIRouter:
    """Routes under `/api/sagas`, every one for operators only."""
    router = APIRouter(prefix="/api/sagas", tags=["operations"], dependencies=[Depends(auth.operator)])

    def view(state: SagaState) -> SagaDetail:
        return detail(state, engine.definition_for(state))

    @router.get("", response_model=SagaPage, responses=responses(401, 403))
    async def list_sagas(
        *,
        statuses: Annotated[
            list[SagaStatus] | None,
            Query(
                alias="status",
                description="Repeat to match any of several.",
                examples=[["REQUIRES_ATTENTION"]],
            ),
        ] = None,
        saga_type: Annotated[
            str | None, Query(alias="type", pattern=SAFE_ID_PATTERN, examples=["place-order"])
        ] = None,
        order_id: Annotated[
            str | None,
            Query(pattern=SAFE_ID_PATTERN, description="The saga's correlation id.", examples=["ord-1"]),
        ] = None,
        since: Annotated[
            IsoDateTime | None,
            Query(description="Sagas created at or after this instant.", examples=["2026-01-31T00:00:00Z"]),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
        skip: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> SagaPage:
        """List sagas by status, type, order and age, newest first (operators)."""
        query = SagaQuery(
            statuses=frozenset(statuses) if statuses else None,
            saga_type=saga_type,
            correlation_id=order_id,
            since=since,
            limit=limit,
            skip=skip,
        )
        states, total = await engine.find(query)
        items = [summary(s, engine.definition_for(s)) for s in states]
        return SagaPage(items=items, total=total, limit=limit, skip=skip)

    @router.get("/{saga_id}", response_model=SagaDetail, responses=responses(401, 403, 404))
    async def get_saga(saga_id: SagaPath) -> SagaDetail:
        """A saga with its lease, masked input, outputs, compensation plan and every attempt (operators)."""
        with _engine_errors(saga_id, ConflictError):
            return view(await engine.get(saga_id))

    @router.post("/{saga_id}/retry", response_model=SagaDetail, responses=responses(401, 403, 404, 409))
    async def retry_saga(
        saga_id: SagaPath, command: Annotated[OperatorCommand, Body(examples=[_RETRY_EXAMPLE])]
    ) -> SagaDetail:
        """Resume a parked (`REQUIRES_ATTENTION`) saga where it stopped, with a fresh retry budget.

        The action, its actor and reason are recorded in the saga's history. Any other state answers
        409 `saga.not_parked`.
        """
        with _engine_errors(saga_id, SagaNotParkedError):
            state = await engine.resume(saga_id, actor=command.actor or DEFAULT_ACTOR, reason=command.reason)
        return view(state)

    @router.post("/{saga_id}/cancel", response_model=SagaDetail, responses=responses(401, 403, 404, 409))
    async def cancel_saga(
        saga_id: SagaPath, command: Annotated[OperatorCommand, Body(examples=[_CANCEL_EXAMPLE])]
    ) -> SagaDetail:
        """Stop a running saga and compensate what it did, in reverse order.

        Applies only before the saga's point of no return (its pivot step); otherwise, and for a
        saga that is not running, answers 409 `saga.not_cancellable`.
        """
        with _engine_errors(saga_id, SagaNotCancellableError):
            state = await engine.cancel(saga_id, actor=command.actor or DEFAULT_ACTOR, reason=command.reason)
        return view(state)

    return router
