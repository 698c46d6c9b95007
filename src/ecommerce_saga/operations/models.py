"""The saga operations API's documents: saga summaries and details, operator commands, and errors."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import ConfigDict, Field

from ecommerce_saga.saga import AttemptStatus, Phase, SagaStatus
from ecommerce_saga.shared.contracts import ConflictError, FrozenModel, NotFoundError

_EXAMPLE_TIME = "2026-01-31T12:00:00.123000Z"

Actor = Annotated[
    str,
    Field(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._@-]*$",
        description="Who acts; recorded in the saga's history.",
        examples=["alice@ops"],
    ),
]


_STARTED, _ENDED = "2026-01-31T12:00:00.100000Z", "2026-01-31T12:00:00.112000Z"
_DETAIL_EXAMPLE: dict[str, Any] = {
    "saga_id": "ord-6f1c2a9b3d4e",
    "saga_type": "place-order",
    "status": "COMPENSATED",
    "correlation_id": "ord-6f1c2a9b3d4e",
    "current_step": None,
    "current_phase": None,
    "created_at": _EXAMPLE_TIME,
    "updated_at": _EXAMPLE_TIME,
    "failure_code": "payment.declined",
    "failure_message": "card declined",
    "lease_owner": "worker-3f2a1b",
    "lease_expires_at": None,
    "parked": False,
    "version": 7,
    "fencing_token": 1,
    "parked_from": None,
    "deadline_at": None,
    "failure": {"type": "PaymentDeclinedError", "code": "payment.declined", "message": "card declined",
                "retryable": False},
    "input": {"order_id": "ord-6f1c2a9b3d4e", "total_cents": 2500, "payment_token": "***"},
    "outputs": {"reserve_inventory": {"reservation_id": "res-1"}},
    "steps": [
        {"name": "reserve_inventory", "kind": "compensatable", "compensatable": True,
         "status": "COMPENSATED", "attempts": 1},
        {"name": "process_payment", "kind": "compensatable", "compensatable": True,
         "status": "FAILED", "attempts": 1},
    ],
    "compensation": {"plan": ["reserve_inventory", "on_compensated"], "position": 2, "total": 2,
                     "done": ["reserve_inventory", "on_compensated"], "pending": []},
    "actions": {"retry": False, "cancel": False},
    "history": [
        {"step": "process_payment", "phase": "action", "attempt": 1, "status": "FAILED",
         "started_at": _STARTED, "ended_at": _ENDED, "duration_ms": 12.0,
         "error": {"type": "PaymentDeclinedError", "code": "payment.declined", "message": "card declined"},
         "worker": "worker-3f2a1b", "actor": None, "reason": None},
    ],
}  # fmt: skip


class UnknownSagaError(NotFoundError):
    """No saga with that id."""

    code = "saga.not_found"
    title = "Saga not found"


class SagaNotParkedError(ConflictError):
    """Only a parked (``REQUIRES_ATTENTION``) saga can be retried."""

    code = "saga.not_parked"
    title = "Saga is not parked"


class SagaNotCancellableError(ConflictError):
    """Only a running saga that has not passed its point of no return can be cancelled."""

    code = "saga.not_cancellable"
    title = "Saga cannot be cancelled"


class OperatorCommand(FrozenModel):
    """An operator's retry or cancel: why, and who."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"reason": "payment gateway is back up", "actor": "alice@ops"}]}
    )

    reason: str = Field(
        min_length=1, max_length=500, pattern=r"\S", description="Why; recorded in the saga's history."
    )
    actor: Actor | None = Field(default=None, description='Who acts; "admin" when omitted.')


class FailureView(FrozenModel):
    """A recorded failure."""

    type: str = Field(examples=["NonRetryableError"])
    code: str | None = Field(default=None, examples=["payment.declined"])
    message: str = Field(examples=["card declined"])
    retryable: bool = True


class SagaSummary(FrozenModel):
    """A saga in a list."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "saga_id": "ord-6f1c2a9b3d4e",
                    "saga_type": "place-order",
                    "status": "REQUIRES_ATTENTION",
                    "correlation_id": "ord-6f1c2a9b3d4e",
                    "current_step": "reserve_inventory",
                    "current_phase": "compensation",
                    "created_at": _EXAMPLE_TIME,
                    "updated_at": _EXAMPLE_TIME,
                    "failure_code": "payment.declined",
                    "failure_message": "card declined",
                    "lease_owner": "worker-3f2a1b",
                    "lease_expires_at": None,
                    "parked": True,
                }
            ]
        }
    )

    saga_id: str
    saga_type: str
    status: SagaStatus
    correlation_id: str | None = Field(description="The order id, for the order sagas.")
    current_step: str | None = Field(description="The step in flight or next to run; none once final.")
    current_phase: Phase | None = Field(description="Whether `current_step` runs forward or compensates.")
    created_at: datetime
    updated_at: datetime
    failure_code: str | None = None
    failure_message: str | None = None
    lease_owner: str | None = Field(description="The worker that holds (or last held) the saga's lease.")
    lease_expires_at: datetime | None = Field(description="When the lease lapses; none when not leased.")
    parked: bool = Field(description="True when the saga is REQUIRES_ATTENTION: an operator must act.")


class SagaPage(FrozenModel):
    """One page of sagas, newest first."""

    items: list[SagaSummary]
    total: int
    limit: int
    skip: int


class ErrorView(FrozenModel):
    """Why an attempt failed."""

    type: str
    code: str | None = None
    message: str


class HistoryView(FrozenModel):
    """One attempt of an action or a compensation, or one operator action."""

    step: str = Field(examples=["process_payment"])
    phase: Phase
    attempt: int = Field(examples=[1])
    status: AttemptStatus
    started_at: datetime
    ended_at: datetime | None = None
    duration_ms: float | None = Field(default=None, examples=[12.5])
    error: ErrorView | None = None
    worker: str | None = None
    actor: str | None = None
    reason: str | None = None


class StepView(FrozenModel):
    """A step of the saga's definition and how far it got."""

    name: str = Field(examples=["reserve_inventory"])
    kind: str = Field(description="compensatable, pivot or retriable", examples=["compensatable"])
    compensatable: bool
    status: str = Field(
        description="PENDING, RUNNING, SUCCEEDED, FAILED, COMPENSATING or COMPENSATED", examples=["SUCCEEDED"]
    )
    attempts: int


class CompensationView(FrozenModel):
    """The compensation plan and how far it has got."""

    plan: list[str] = Field(description="Steps to undo, in the order they are undone.")
    position: int = Field(description="Index into `plan` of the compensation in flight.")
    total: int
    done: list[str]
    pending: list[str]


class SagaActions(FrozenModel):
    """Which operator actions apply now."""

    retry: bool = Field(description="The saga is parked: `POST .../retry` resumes it.")
    cancel: bool = Field(description="The saga runs and can still be undone: `POST .../cancel`.")


class SagaDetail(SagaSummary):
    """Everything about one saga, secrets masked."""

    model_config = ConfigDict(json_schema_extra={"examples": [_DETAIL_EXAMPLE]})

    version: int
    fencing_token: int
    parked_from: SagaStatus | None = None
    deadline_at: datetime | None = None
    failure: FailureView | None = None
    input: dict[str, Any] = Field(description="The saga's input; values of secret-like keys are masked.")
    outputs: dict[str, Any] = Field(description="Each succeeded step's output; secrets masked.")
    steps: list[StepView] = Field(
        description="The definition's steps; empty if this app does not run the type."
    )
    compensation: CompensationView
    actions: SagaActions
    history: list[HistoryView]
