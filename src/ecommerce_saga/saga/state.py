"""The persisted state of one saga: status, step outputs, and its append-only history."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def utcnow() -> datetime:
    """The current time, timezone-aware, truncated to milliseconds (what MongoDB stores)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@dataclass(frozen=True, slots=True)
class DefinitionRef:
    """Which definition a saga runs on: its name, version and step fingerprint.

    Attributes:
        saga_type: The definition's name.
        version: The definition's version (1 and up).
        fingerprint: A hash of the definition's step names and kinds, in order.
    """

    saga_type: str
    version: int
    fingerprint: str


class SagaStatus(StrEnum):
    """Where a saga is in its life.

    ``COMPLETED`` and ``COMPENSATED`` are final. ``REQUIRES_ATTENTION`` is a parked saga: a
    compensation or a retriable step ran out of retries, and an operator must resume it.
    """

    RUNNING = "RUNNING"
    COMPENSATING = "COMPENSATING"
    COMPLETED = "COMPLETED"
    COMPENSATED = "COMPENSATED"
    REQUIRES_ATTENTION = "REQUIRES_ATTENTION"

    @property
    def is_final(self) -> bool:
        """True for COMPLETED and COMPENSATED."""
        return self in (SagaStatus.COMPLETED, SagaStatus.COMPENSATED)

    @property
    def is_active(self) -> bool:
        """True while a worker should be driving the saga (RUNNING or COMPENSATING)."""
        return self in (SagaStatus.RUNNING, SagaStatus.COMPENSATING)


class Phase(StrEnum):
    """What a history entry records."""

    ACTION = "action"
    COMPENSATION = "compensation"
    OPERATOR = "operator"


class AttemptStatus(StrEnum):
    """The outcome of one attempt."""

    STARTED = "STARTED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class ErrorInfo(BaseModel):
    """A recorded failure."""

    model_config = ConfigDict(frozen=True)

    type: str
    message: str
    code: str | None = None
    retryable: bool = True


class HistoryEntry(BaseModel):
    """One attempt of an action or a compensation, or one operator action."""

    step: str
    phase: Phase
    attempt: int = 1
    status: AttemptStatus = AttemptStatus.STARTED
    started_at: datetime = Field(default_factory=utcnow)
    ended_at: datetime | None = None
    error: ErrorInfo | None = None
    worker: str | None = None
    actor: str | None = None
    reason: str | None = None

    @property
    def duration_seconds(self) -> float | None:
        """How long the attempt took, once it ended."""
        if self.ended_at is None:
            return None
        return max((self.ended_at - self.started_at).total_seconds(), 0.0)


def runs_on(
    saga_type: str, version: int | None, fingerprint: str | None, definitions: Collection[DefinitionRef]
) -> bool:
    """True if one of `definitions` can run a saga stored with this type, definition version and
    fingerprint (`SagaState.runs_on`; a saga store reads the three fields alone to decide).

    A saga stored before definitions had versions (`version` None) runs on whatever version 1 is
    registered.
    """
    if version is None:
        return any(ref.saga_type == saga_type and ref.version == 1 for ref in definitions)
    return DefinitionRef(saga_type, version, fingerprint or "") in definitions


class SagaState(BaseModel):
    """Everything the engine persists about one saga.

    Attributes:
        saga_id: Unique id; starting a saga with an existing id returns the existing saga.
        saga_type: The definition's name.
        definition_version: The version of the definition the saga runs on; None in sagas stored
            before definitions had versions, which run on version 1.
        definition_fingerprint: The fingerprint of that definition's steps when the saga started
            (None in sagas stored before definitions had versions).
        status: See `SagaStatus`.
        input: The saga's input.
        outputs: Each succeeded step's output, under the step's name.
        current_step: Index of the forward step in flight (or next to run).
        compensation_plan: Names of the steps to compensate, in the order they are undone.
        compensation_position: Index into `compensation_plan` of the compensation in flight.
        parked_from: The status the saga had when it was parked.
        failure: The failure that stopped forward progress, if any.
        history: Every attempt and operator action, in order.
        correlation_id: An id the caller looks the saga up by (an order id, say).
        version: Incremented by every write; writes are conditional on it.
        lease_owner, lease_expires_at_ms, fencing_token: The worker lease (see the engine).
        deadline_at_ms: Epoch milliseconds after which no forward step begins.
    """

    saga_id: str
    saga_type: str
    definition_version: int | None = None
    definition_fingerprint: str | None = None
    status: SagaStatus = SagaStatus.RUNNING
    input: dict[str, Any] = Field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    current_step: int = 0
    compensation_plan: list[str] = Field(default_factory=list)
    compensation_position: int = 0
    parked_from: SagaStatus | None = None
    failure: ErrorInfo | None = None
    history: list[HistoryEntry] = Field(default_factory=list)
    correlation_id: str | None = None
    version: int = 0
    lease_owner: str | None = None
    lease_expires_at_ms: int = 0
    fencing_token: int = 0
    deadline_at_ms: int | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    @property
    def runs_on_version(self) -> int:
        """The definition version the saga runs on (1 for sagas stored before versions)."""
        return self.definition_version or 1

    def runs_on(self, definitions: Collection[DefinitionRef]) -> bool:
        """True if one of `definitions` can run this saga.

        A saga stored before definitions had versions runs on whatever version 1 is registered.
        """
        return runs_on(self.saga_type, self.definition_version, self.definition_fingerprint, definitions)

    def open_entry(self) -> HistoryEntry | None:
        """The last history entry if it is an attempt still in flight."""
        if self.history and self.history[-1].status is AttemptStatus.STARTED:
            return self.history[-1]
        return None

    def attempts_of(self, step: str, phase: Phase) -> int:
        """Attempts of `step` in `phase` since the last operator action."""
        count = 0
        for entry in reversed(self.history):
            if entry.phase is Phase.OPERATOR:
                break
            if entry.step == step and entry.phase is phase:
                count += 1
        return count
