"""Steps: what an action receives (`StepContext`), a step's handle (`Step`) and its definition (`SagaStep`).

A typed step is declared once as a handle, a persisted name with an output model, and used
three ways: to define the step (``RESERVE.does(reserve).undoes(release)``), to read its output
in a later step (``ctx.output_of(RESERVE)``), and to hand its compensation that output, typed.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from ecommerce_saga.saga.errors import SagaDefinitionError
from ecommerce_saga.saga.retry import RetryPolicy
from ecommerce_saga.saga.state import ErrorInfo

JsonObject = dict[str, Any]
"""A step's output as stored: a JSON-compatible mapping, under the step's name."""

InT = TypeVar("InT")
"""A saga's input type: a pydantic model for a typed saga, a mapping for an untyped one."""
OutT = TypeVar("OutT")
"""A step's output type."""
ModelT = TypeVar("ModelT", bound=BaseModel)
"""A typed step's output model."""

ON_COMPENSATED = "on_compensated"
"""The name under which a saga's `on_compensated` hook is planned and recorded (no step may take it)."""

NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
"""What a saga or step name looks like (it is persisted)."""


def check_name(kind: str, name: str) -> None:
    """Refuse a malformed saga or step name."""
    if not NAME.match(name):
        raise SagaDefinitionError(f"{kind} name {name!r} must match {NAME.pattern}")


class StepKind(StrEnum):
    """The saga-pattern role of a step.

    Compensatable steps come first and can be undone; the optional pivot is the go/no-go point;
    retriable steps follow it and must not fail for good (exhausting their retries parks the saga
    for an operator instead of compensating). Neither a pivot nor a retriable step has a
    compensation: once the pivot succeeded, the saga is never compensated.
    """

    COMPENSATABLE = "compensatable"
    PIVOT = "pivot"
    RETRIABLE = "retriable"


@dataclass(frozen=True, slots=True)
class StepContext(Generic[InT]):
    """What an action or compensation receives.

    Attributes:
        saga_id: The saga's id.
        saga_type: The saga definition's name.
        step: The step's name.
        attempt: 1 for the first attempt, counting retries and recoveries. Not a sign that the
            step never ran: a step whose success was saved with a later save (`Saga`'s
            `save_every_step` and `save_compensatable_steps`) and lost with its worker counts
            from 1 again when it runs again; the idempotency key is what tells.
        idempotency_key: Stable across retries and recoveries of this step (and distinct for its
            compensation); participants use it to apply their effect exactly once.
        input: The saga's input: an instance of the saga's input model, or for a saga without
            one a read-only mapping.
        outputs: Outputs of the steps that succeeded before this one, as stored, by step name
            (typed sagas read them with `output_of`).
        output: For a compensation, the stored output of the step being undone (None if it
            never succeeded); for an action, None.
        compensating: True when running a compensation.
        failure: For a compensation, the failure that stopped the saga (None for an action).
    """

    saga_id: str
    saga_type: str
    step: str
    attempt: int
    idempotency_key: str
    input: InT
    outputs: Mapping[str, Mapping[str, Any]]
    output: Mapping[str, Any] | None = None
    compensating: bool = False
    failure: ErrorInfo | None = None

    def output_of(self, step: Step[ModelT]) -> ModelT:
        """The output of an earlier step, as its model.

        Raises:
            LookupError: If that step has not succeeded before this one.
        """
        stored = self.outputs.get(step.name)
        if stored is None:
            raise LookupError(f"step {self.step!r} reads the output of {step.name!r}, which has none yet")
        return step.output.model_validate(stored)


Action = Callable[[StepContext[InT]], Awaitable[OutT]]
"""A step's action: returns the step's output (a model, a JSON-like dict, or None for an empty one)."""
Compensation = Callable[[StepContext[InT]], Awaitable[object]]
"""Undoes a step's effect (its return value is ignored). Must succeed as a no-op when there is
nothing to undo."""
TypedCompensation = Callable[[StepContext[InT], OutT | None], Awaitable[None]]
"""Undoes a typed step's effect, given that step's output (None if the action never succeeded)."""


@dataclass(frozen=True, slots=True)
class StepWrites(Generic[OutT]):
    """An attempt's effect as writes for the saga store to make with the save that opens it
    (`SagaStep.riding`).

    Attributes:
        writes: The writes, as the store takes them (`MongoSagaStore`: `stores.ordered` writes on
            its client).
        output: The step's output once every write is made.
        made: Called once every write is made (to remember what was written, say), or None.
    """

    writes: Sequence[object]
    output: OutT
    made: Callable[[], None] | None = None


WritesOf = Callable[[StepContext[InT]], StepWrites[OutT] | None]
"""Builds an attempt's writes (`SagaStep.riding`), or None to leave the attempt to the action.
It must not do I/O nor have any effect."""
SagaHook = Callable[[StepContext[InT]], Awaitable[None]]
"""A saga-level hook (`Saga.on_compensated`): receives the saga's context, with every stored
output and the failure that stopped the saga."""


@dataclass(frozen=True, slots=True)
class SagaStep(Generic[InT, OutT]):
    """One step of a saga.

    Typed steps are built from a `Step` handle (``RESERVE.does(reserve).undoes(release)``);
    a step can also be built directly, untyped, with an action returning a dict.

    Args:
        name: Stable name, persisted in the saga's state (letters, digits, ``_`` and ``-``).
        action: The forward action.
        compensation: Undoes the action; None when there is nothing to undo. Only a
            compensatable step may have one.
        kind: The step's role (see `StepKind`).
        retry: Retry policy of the action.
        timeout: Seconds one attempt may take before it counts as a retryable failure.
        output: The model of the action's output (typed steps), or None.
        writes: Builds the writes an attempt may make with the save that opens it, or None
            (see `riding`).
    """

    name: str
    action: Action[InT, OutT]
    compensation: Compensation[InT] | None = None
    kind: StepKind = StepKind.COMPENSATABLE
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float = 10.0
    output: type[BaseModel] | None = None
    writes: WritesOf[InT, OutT] | None = None

    def __post_init__(self) -> None:
        check_name("step", self.name)
        if self.timeout <= 0:
            raise SagaDefinitionError(f"step {self.name!r}: timeout must be positive")
        if self.kind is not StepKind.COMPENSATABLE and self.compensation is not None:
            msg = (
                f"step {self.name!r}: a {self.kind.value} step has no compensation (once the pivot "
                "succeeded the saga is never compensated; it parks for an operator instead)"
            )
            raise SagaDefinitionError(msg)

    def undoes(self, compensation: TypedCompensation[InT, OutT]) -> SagaStep[InT, OutT]:
        """This step, undone by `compensation`, which receives the step's output (None if the
        action never succeeded: its outcome is unknown after a timeout, so undo what was done)."""
        model = self.output

        async def undo(ctx: StepContext[InT]) -> None:
            stored = ctx.output
            done: Any = None if stored is None or model is None else model.model_validate(stored)
            await compensation(ctx, done)

        return dataclasses.replace(self, compensation=undo)

    def riding(self, writes: WritesOf[InT, OutT]) -> SagaStep[InT, OutT]:
        """This step, whose attempt may ride on the save that opens it.

        When a save records the step before it and opens this one (write-ahead), `writes(ctx)`
        gives the attempt's effect as writes for the store, with the output they stand for.
        The store makes them right after that save, in the same command where it can
        (`SagaStore.save_and_write`); it never makes them if the save is refused. When it made
        every one, the attempt succeeded with that output and the action does not run. When it
        made none, or one was refused or matched nothing, the action runs as usual: it must end
        the same way whether or not some of the writes were made (an idempotent action does).
        The step counts one command fewer on the saga's path; nothing else changes, after a
        crash either.
        """
        return dataclasses.replace(self, writes=writes)


@dataclass(frozen=True, slots=True)
class Step(Generic[ModelT]):
    """A typed step's handle: its persisted name and its output model.

    Args:
        name: Stable name, persisted in the saga's state.
        output: The pydantic model of the step's output.
    """

    name: str
    output: type[ModelT]

    def __post_init__(self) -> None:
        check_name("step", self.name)

    def does(
        self, action: Action[InT, ModelT], *, retry: RetryPolicy | None = None, timeout: float = 10.0
    ) -> SagaStep[InT, ModelT]:
        """A compensatable step running `action` (add its compensation with `SagaStep.undoes`)."""
        return self._step(action, StepKind.COMPENSATABLE, retry, timeout)

    def pivot(
        self, action: Action[InT, ModelT], *, retry: RetryPolicy | None = None, timeout: float = 10.0
    ) -> SagaStep[InT, ModelT]:
        """The saga's pivot: its point of no return."""
        return self._step(action, StepKind.PIVOT, retry, timeout)

    def retriable(
        self, action: Action[InT, ModelT], *, retry: RetryPolicy | None = None, timeout: float = 10.0
    ) -> SagaStep[InT, ModelT]:
        """A step after the pivot, retried until it succeeds (or parks the saga)."""
        return self._step(action, StepKind.RETRIABLE, retry, timeout)

    def _step(
        self, action: Action[InT, ModelT], kind: StepKind, retry: RetryPolicy | None, timeout: float
    ) -> SagaStep[InT, ModelT]:
        return SagaStep(
            self.name, action, kind=kind, retry=retry or RetryPolicy(), timeout=timeout, output=self.output
        )
