"""Saga definitions: a named, ordered list of named steps, validated when defined."""

from __future__ import annotations

import itertools
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ecommerce_saga.saga.errors import SagaDefinitionError
from ecommerce_saga.saga.retry import RetryPolicy
from ecommerce_saga.saga.state import ErrorInfo

JsonObject = dict[str, Any]
"""A step's output: a JSON-compatible mapping (datetimes allowed), stored under the step's name."""

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


class StepKind(StrEnum):
    """The saga-pattern role of a step.

    Compensatable steps come first and can be undone; the optional pivot is the go/no-go point;
    retriable steps follow it and must not fail for good (exhausting their retries parks the saga
    for an operator instead of compensating).
    """

    COMPENSATABLE = "compensatable"
    PIVOT = "pivot"
    RETRIABLE = "retriable"


_KIND_ORDER = {StepKind.COMPENSATABLE: 0, StepKind.PIVOT: 1, StepKind.RETRIABLE: 2}


@dataclass(frozen=True, slots=True)
class StepContext:
    """What an action or compensation receives.

    Attributes:
        saga_id: The saga's id.
        saga_type: The saga definition's name.
        step: The step's name.
        attempt: 1 for the first attempt, counting retries and recoveries.
        idempotency_key: Stable across retries and recoveries of this step (and distinct for its
            compensation); participants use it to apply their effect exactly once.
        input: The saga's input, read-only.
        outputs: Outputs of the steps that succeeded before this one, by step name.
        output: For a compensation, the output of the step being undone (None if it never
            succeeded); for an action, None.
        compensating: True when running a compensation.
        failure: For a compensation, the failure that stopped the saga (None for an action).
    """

    saga_id: str
    saga_type: str
    step: str
    attempt: int
    idempotency_key: str
    input: Mapping[str, Any]
    outputs: Mapping[str, Mapping[str, Any]]
    output: Mapping[str, Any] | None = None
    compensating: bool = False
    failure: ErrorInfo | None = None


Action = Callable[[StepContext], Awaitable[JsonObject | None]]
"""A step's action: returns the step's output (or None for an empty one)."""
Compensation = Callable[[StepContext], Awaitable[JsonObject | None]]
"""Undoes a step's effect. Must succeed as a no-op when there is nothing to undo."""


@dataclass(frozen=True, slots=True)
class SagaStep:
    """One step of a saga.

    Args:
        name: Stable name, persisted in the saga's state (letters, digits, ``_`` and ``-``).
        action: The forward action.
        compensation: Undoes the action; None when there is nothing to undo.
        kind: The step's role (see `StepKind`).
        retry: Retry policy of the action.
        timeout: Seconds one attempt may take before it counts as a retryable failure.
    """

    name: str
    action: Action
    compensation: Compensation | None = None
    kind: StepKind = StepKind.COMPENSATABLE
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            msg = f"step name {self.name!r} must match {_NAME.pattern}"
            raise SagaDefinitionError(msg)
        if self.timeout <= 0:
            raise SagaDefinitionError(f"step {self.name!r}: timeout must be positive")
        if self.kind is StepKind.PIVOT and self.compensation is not None:
            msg = f"step {self.name!r}: a pivot step is the point of no return and has no compensation"
            raise SagaDefinitionError(msg)


@dataclass(frozen=True, slots=True)
class Saga:
    """A saga definition: a name and an ordered list of steps.

    Args:
        name: Stable name, persisted as the saga's type.
        steps: The steps, in execution order: compensatable steps, then at most one pivot,
            then retriable steps.
        compensation_retry: Retry policy of compensations. When it is exhausted the saga is
            parked as ``REQUIRES_ATTENTION`` for an operator; it is never dropped.
        deadline: Seconds from the start after which no further forward step is begun and the
            saga compensates; None for no deadline.

    Raises:
        SagaDefinitionError: If the definition is invalid.
    """

    name: str
    steps: Sequence[SagaStep]
    compensation_retry: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(initial_interval=0.1, maximum_interval=10.0, maximum_attempts=8)
    )
    deadline: float | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise SagaDefinitionError(f"saga name {self.name!r} must match {_NAME.pattern}")
        object.__setattr__(self, "steps", tuple(self.steps))
        if not self.steps:
            raise SagaDefinitionError(f"saga {self.name!r} has no steps")
        _check_unique(self.name, [step.name for step in self.steps])
        _check_kind_order(self.name, self.steps)
        if self.deadline is not None and self.deadline <= 0:
            raise SagaDefinitionError(f"saga {self.name!r}: deadline must be positive")

    def step_index(self, name: str) -> int:
        """The position of the step called `name`."""
        for index, step in enumerate(self.steps):
            if step.name == name:
                return index
        raise KeyError(name)


def _check_unique(saga: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise SagaDefinitionError(f"saga {saga!r}: step name {name!r} is used twice")
        seen.add(name)


def _check_kind_order(saga: str, steps: Sequence[SagaStep]) -> None:
    pivots = [step.name for step in steps if step.kind is StepKind.PIVOT]
    if len(pivots) > 1:
        raise SagaDefinitionError(f"saga {saga!r} has more than one pivot step: {pivots}")
    for before, after in itertools.pairwise(steps):
        if _KIND_ORDER[after.kind] < _KIND_ORDER[before.kind]:
            msg = (
                f"saga {saga!r}: {after.kind.value} step {after.name!r} cannot follow "
                f"{before.kind.value} step {before.name!r}; after a pivot or retriable step every "
                "step must be retriable"
            )
            raise SagaDefinitionError(msg)


def build_registry(definitions: Sequence[Saga]) -> Mapping[str, Saga]:
    """Definitions by name, rejecting duplicates."""
    registry: dict[str, Saga] = {}
    for definition in definitions:
        if definition.name in registry:
            raise SagaDefinitionError(f"saga {definition.name!r} is defined twice")
        registry[definition.name] = definition
    return registry
