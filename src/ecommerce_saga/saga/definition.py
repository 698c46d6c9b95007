"""Saga definitions: a named, ordered list of named steps, validated when defined."""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ecommerce_saga.saga.errors import SagaDefinitionError, UnknownDefinitionError, UnknownSagaTypeError
from ecommerce_saga.saga.retry import RetryPolicy
from ecommerce_saga.saga.state import DefinitionRef, ErrorInfo, SagaState

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
    """A saga definition: a name, a version and an ordered list of steps.

    Args:
        name: Stable name, persisted as the saga's type.
        steps: The steps, in execution order: compensatable steps, then at most one pivot,
            then retriable steps.
        version: Persisted with every saga started on this definition; a saga always resumes on
            the version it started on. Bump it whenever the steps' names, kinds or order change
            (see "Changing a saga" in docs/saga-engine.md).
        compensation_retry: Retry policy of compensations. When it is exhausted the saga is
            parked as ``REQUIRES_ATTENTION`` for an operator; it is never dropped.
        deadline: Seconds from the start after which no further forward step is begun and the
            saga compensates; None for no deadline.

    Raises:
        SagaDefinitionError: If the definition is invalid.
    """

    name: str
    steps: Sequence[SagaStep]
    version: int = 1
    compensation_retry: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(initial_interval=0.1, maximum_interval=10.0, maximum_attempts=8)
    )
    deadline: float | None = None
    fingerprint: str = field(init=False)
    """A hash of the step names and kinds, in order: what a stored saga relies on to resume."""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise SagaDefinitionError(f"saga name {self.name!r} must match {_NAME.pattern}")
        if self.version < 1:
            raise SagaDefinitionError(f"saga {self.name!r}: version must be 1 or more")
        object.__setattr__(self, "steps", tuple(self.steps))
        if not self.steps:
            raise SagaDefinitionError(f"saga {self.name!r} has no steps")
        _check_unique(self.name, [step.name for step in self.steps])
        _check_kind_order(self.name, self.steps)
        if self.deadline is not None and self.deadline <= 0:
            raise SagaDefinitionError(f"saga {self.name!r}: deadline must be positive")
        shape = "\n".join(f"{step.kind.value}:{step.name}" for step in self.steps)
        object.__setattr__(self, "fingerprint", hashlib.sha256(shape.encode()).hexdigest()[:16])

    @property
    def ref(self) -> DefinitionRef:
        """This definition's name, version and fingerprint, as stored sagas record them."""
        return DefinitionRef(self.name, self.version, self.fingerprint)

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


class Registry:
    """The definitions an engine runs: every registered version of every saga.

    Args:
        definitions: The definitions; one name may come in several versions.

    Raises:
        SagaDefinitionError: If a name and version are registered twice.
    """

    def __init__(self, definitions: Sequence[Saga]) -> None:
        self._versions: dict[str, dict[int, Saga]] = {}
        for definition in definitions:
            versions = self._versions.setdefault(definition.name, {})
            if definition.version in versions:
                msg = f"saga {definition.name!r} version {definition.version} is defined twice"
                raise SagaDefinitionError(msg)
            versions[definition.version] = definition
        self.refs = frozenset(d.ref for d in definitions)
        """Name, version and fingerprint of every registered definition."""
        self.newest: Mapping[str, Saga] = {
            name: versions[max(versions)] for name, versions in self._versions.items()
        }
        """The newest version of each saga, by name: new sagas start on it."""

    def all(self) -> list[Saga]:
        """Every registered definition."""
        return [d for versions in self._versions.values() for d in versions.values()]

    def newest_of(self, saga_type: str) -> Saga:
        """The newest version of the saga named `saga_type`.

        Raises:
            UnknownSagaTypeError: If there is none.
        """
        try:
            return self.newest[saga_type]
        except KeyError:
            raise UnknownSagaTypeError(f"no saga definition named {saga_type!r}") from None

    def find(self, state: SagaState) -> Saga | None:
        """The definition `state` runs on, or None if it is not registered here."""
        if not state.runs_on(self.refs):
            return None
        return self._versions[state.saga_type][state.runs_on_version]

    def of(self, state: SagaState) -> Saga:
        """The definition `state` runs on.

        Raises:
            UnknownDefinitionError: If that name, version and fingerprint are not registered here.
        """
        definition = self.find(state)
        if definition is None:
            msg = (
                f"saga {state.saga_id} runs on {state.saga_type!r} version {state.runs_on_version} "
                f"(steps {state.definition_fingerprint or 'unrecorded'}), which is not registered here"
            )
            raise UnknownDefinitionError(msg)
        return definition
