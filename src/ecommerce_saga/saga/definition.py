"""Saga definitions: a named, ordered list of named steps, validated when defined."""

from __future__ import annotations

import copy
import hashlib
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic

from pydantic import BaseModel, ValidationError

from ecommerce_saga.saga.errors import (
    InvalidSagaInputError,
    SagaDefinitionError,
    UnknownDefinitionError,
    UnknownSagaTypeError,
)
from ecommerce_saga.saga.retry import RetryPolicy
from ecommerce_saga.saga.state import DefinitionRef, SagaState
from ecommerce_saga.saga.steps import (
    ON_COMPENSATED,
    InT,
    JsonObject,
    SagaHook,
    SagaStep,
    StepContext,
    StepKind,
    check_name,
)

_KIND_ORDER = {StepKind.COMPENSATABLE: 0, StepKind.PIVOT: 1, StepKind.RETRIABLE: 2}


@dataclass(frozen=True, slots=True)
class Saga(Generic[InT]):
    """A saga definition: a name, a version, an input model and an ordered list of steps.

    Args:
        name: Stable name, persisted as the saga's type.
        steps: The steps, in execution order: compensatable steps, then at most one pivot,
            then retriable steps.
        version: Persisted with every saga started on this definition; a saga always resumes on
            the version it started on. Bump it whenever the steps' names, kinds or order change
            (see "Changing a saga" in docs/saga-engine.md).
        input: The pydantic model of the saga's input, validated when the saga starts and handed
            to every step as ``ctx.input``; None for an untyped saga (its input is a mapping).
        compensation_retry: Retry policy of compensations. When it is exhausted the saga is
            parked as ``REQUIRES_ATTENTION`` for an operator; it is never dropped.
        deadline: Seconds from the start after which no further forward step is begun and the
            saga compensates; None for no deadline.
        on_compensated: Runs once the saga failed and every compensation has run, also when
            there was nothing to undo (its first step failed for business reasons): the place
            to record the failure and tell someone. It is durable like a compensation: recorded
            before it runs (as ``on_compensated``, phase ``compensation``), retried with
            `compensation_retry`, resumed after a crash, and the saga parks if it fails for
            good. So it runs at least once; make it idempotent (``ctx.idempotency_key``).
        on_compensated_timeout: Seconds one attempt of `on_compensated` may take.
        save_every_step: True (the default): every step's outcome is saved before the next step
            begins, so the stored saga always names the one step that may be in flight. False:
            where nothing can be undone any more, a success is saved with the next save instead
            of on its own: the pivot's or a retriable step's success when a retriable step follows,
            and a compensation's success (or the hook's) when another compensation follows.
            After a crash those steps run again from the first one not saved (under the same
            idempotency keys: every action and compensation must be idempotent anyway), and
            nothing that should stand is undone, since none of them is ever compensated. It saves
            one write per such step (see "Write-ahead and the write count" in docs/saga-engine.md).
        save_compensatable_steps: True (the default): each compensatable step's success is saved
            before the next step begins. False: a compensatable step's success is saved with the
            next save instead, at the latest the one that opens the pivot (or the first step that
            is not compensatable), so the point of no return is still recorded before it is
            passed. After a crash the steps run again from the last one saved, under the same
            idempotency keys. A saga taken over from a stopped worker, or cancelled by an
            operator, before its pivot may therefore have done more than its stored state shows:
            if it compensates, every compensatable step up to the pivot is compensated, whether it
            ran or not. So each compensation must accept a step that never ran (its output is
            None) and keep a late run of that step from taking effect afterwards. It saves one
            write per compensatable step but the last.

    Raises:
        SagaDefinitionError: If the definition is invalid.
    """

    name: str
    steps: Sequence[SagaStep[InT, Any]]
    version: int = 1
    input: type[InT] | None = None
    compensation_retry: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(initial_interval=0.1, maximum_interval=10.0, maximum_attempts=8)
    )
    deadline: float | None = None
    on_compensated: SagaHook[InT] | None = None
    on_compensated_timeout: float = 10.0
    save_every_step: bool = True
    save_compensatable_steps: bool = True
    fingerprint: str = field(init=False)
    """A hash of the step names and kinds, in order, and of whether the saga has an
    `on_compensated` hook: what a stored saga relies on to resume."""
    _hook_step: SagaStep[InT, Any] | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        check_name("saga", self.name)
        if self.input is not None and not (
            isinstance(self.input, type) and issubclass(self.input, BaseModel)
        ):
            raise SagaDefinitionError(f"saga {self.name!r}: input must be a pydantic model class")
        if self.version < 1:
            raise SagaDefinitionError(f"saga {self.name!r}: version must be 1 or more")
        object.__setattr__(self, "steps", tuple(self.steps))
        if not self.steps:
            raise SagaDefinitionError(f"saga {self.name!r} has no steps")
        _check_unique(self.name, [step.name for step in self.steps])
        _check_kind_order(self.name, self.steps)
        if self.deadline is not None and self.deadline <= 0:
            raise SagaDefinitionError(f"saga {self.name!r}: deadline must be positive")
        if ON_COMPENSATED in (step.name for step in self.steps):
            raise SagaDefinitionError(f"saga {self.name!r}: the step name {ON_COMPENSATED!r} is reserved")
        shape = "\n".join(f"{step.kind.value}:{step.name}" for step in self.steps)
        if self.on_compensated is not None:  # a stored plan may end with it
            shape += f"\nhook:{ON_COMPENSATED}"
        if not self.save_compensatable_steps:  # how far a stored saga may lag behind its effects
            shape += "\nsaves:before-pivot"
        object.__setattr__(self, "fingerprint", hashlib.sha256(shape.encode()).hexdigest()[:16])
        object.__setattr__(self, "_hook_step", self._as_step(self.on_compensated))

    def _as_step(self, hook: SagaHook[InT] | None) -> SagaStep[InT, Any] | None:
        """The hook as the compensation of a step that is never run forward (the runner plans,
        records and retries it like a compensation)."""
        if hook is None:
            return None

        async def never(ctx: StepContext[InT]) -> None:  # pragma: no cover - never planned forward
            raise AssertionError(f"{ON_COMPENSATED} is not a step")

        try:
            return SagaStep(ON_COMPENSATED, never, hook, timeout=self.on_compensated_timeout)
        except SagaDefinitionError as exc:
            raise SagaDefinitionError(f"saga {self.name!r}: on_compensated: {exc}") from None

    def stored_input(self, saga_input: BaseModel | Mapping[str, Any]) -> JsonObject:
        """The input as a saga stores it (JSON-like), validated against the input model if any.

        Raises:
            InvalidSagaInputError: If the input does not validate.
        """
        if self.input is None:
            if isinstance(saga_input, BaseModel):
                return saga_input.model_dump(mode="json")
            return dict(saga_input)
        model: type[BaseModel] = self.input  # type: ignore[assignment]  # checked in __post_init__
        try:
            value = saga_input if isinstance(saga_input, model) else model.model_validate(saga_input)
        except ValidationError as exc:
            raise InvalidSagaInputError(f"saga {self.name!r}: invalid input: {exc}") from exc
        return value.model_dump(mode="json")

    def step_input(self, stored: JsonObject) -> InT:
        """The input a step receives: the input model's instance, or a read-only copy of the mapping."""
        if self.input is None:
            return MappingProxyType(copy.deepcopy(stored))  # type: ignore[return-value]
        model: type[BaseModel] = self.input  # type: ignore[assignment]
        return model.model_validate(stored)  # type: ignore[return-value]

    @property
    def ref(self) -> DefinitionRef:
        """This definition's name, version and fingerprint, as stored sagas record them."""
        return DefinitionRef(self.name, self.version, self.fingerprint)

    @property
    def unsaved_reach(self) -> int:
        """How many steps a worker may have begun that a stored saga still running does not show.

        With ``save_compensatable_steps=False``, the number of leading compensatable steps: the
        stored state is saved again, at the latest, when the first step that is not compensatable
        opens. With every step saved, 0.
        """
        if self.save_compensatable_steps:
            return 0
        reach = 0
        while reach < len(self.steps) and self.steps[reach].kind is StepKind.COMPENSATABLE:
            reach += 1
        return reach

    def step_index(self, name: str) -> int:
        """The position of the step called `name`."""
        for index, step in enumerate(self.steps):
            if step.name == name:
                return index
        raise KeyError(name)

    def compensation_step(self, name: str) -> SagaStep[InT, Any]:
        """What a compensation plan names: a step, or the `on_compensated` hook (as a step whose
        compensation is the hook)."""
        if name == ON_COMPENSATED and self._hook_step is not None:
            return self._hook_step
        return self.steps[self.step_index(name)]


def _check_unique(saga: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise SagaDefinitionError(f"saga {saga!r}: step name {name!r} is used twice")
        seen.add(name)


def _check_kind_order(saga: str, steps: Sequence[SagaStep[Any, Any]]) -> None:
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

    def __init__(self, definitions: Sequence[Saga[Any]]) -> None:
        self._versions: dict[str, dict[int, Saga[Any]]] = {}
        for definition in definitions:
            versions = self._versions.setdefault(definition.name, {})
            if definition.version in versions:
                msg = f"saga {definition.name!r} version {definition.version} is defined twice"
                raise SagaDefinitionError(msg)
            versions[definition.version] = definition
        self.refs = frozenset(d.ref for d in definitions)
        """Name, version and fingerprint of every registered definition."""
        self.newest: Mapping[str, Saga[Any]] = {
            name: versions[max(versions)] for name, versions in self._versions.items()
        }
        """The newest version of each saga, by name: new sagas start on it."""

    def all(self) -> list[Saga[Any]]:
        """Every registered definition."""
        return [d for versions in self._versions.values() for d in versions.values()]

    def newest_of(self, saga_type: str) -> Saga[Any]:
        """The newest version of the saga named `saga_type`.

        Raises:
            UnknownSagaTypeError: If there is none.
        """
        try:
            return self.newest[saga_type]
        except KeyError:
            raise UnknownSagaTypeError(f"no saga definition named {saga_type!r}") from None

    def find(self, state: SagaState) -> Saga[Any] | None:
        """The definition `state` runs on, or None if it is not registered here."""
        if not state.runs_on(self.refs):
            return None
        return self._versions[state.saga_type][state.runs_on_version]

    def of(self, state: SagaState) -> Saga[Any]:
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
