"""A test kit for sagas: scripted steps, fault injection, and an invariant checker.

Typical use::

    ledger = InMemoryLedger()
    faults = FaultPlan().fail_transiently("charge", times=2).crash_after("ship")
    saga = scripted_saga("order", ["reserve", "charge", "ship"], ledger, faults)
    ...run it...
    assert_invariants(await engine.get(saga_id), saga, await ledger.effects(saga_id))

A scripted step applies its effect through an `EffectLedger` keyed by the step's idempotency
key, as an exactly-once participant would; the checker then proves that the saga either
completed with every effect applied once, or undid every applied effect in reverse order, and
that no step's effect was ever applied under two different keys.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ecommerce_saga.saga.definition import Saga
from ecommerce_saga.saga.errors import NonRetryableError, RetryableError
from ecommerce_saga.saga.retry import RetryPolicy
from ecommerce_saga.saga.state import SagaState, SagaStatus
from ecommerce_saga.saga.steps import JsonObject, SagaStep, StepContext, StepKind

DO = "do"
UNDO = "undo"


class SimulatedCrash(BaseException):
    """Raised by a scripted step to model the worker dying: the engine writes nothing more."""


@dataclass(frozen=True, slots=True)
class Effect:
    """One effect applied by a participant.

    Attributes:
        saga_id: The saga that caused it.
        step: The step's name.
        kind: ``"do"`` for an action, ``"undo"`` for a compensation.
        key: The idempotency key it was applied under.
        at_ns: When it was applied (wall clock, nanoseconds), for ordering.
    """

    saga_id: str
    step: str
    kind: str
    key: str
    at_ns: int


class EffectLedger(Protocol):
    """Where scripted steps apply their effects, exactly once per idempotency key."""

    async def apply(self, effect: Effect) -> bool:
        """Record `effect` unless its key was seen; True if it was applied now."""
        ...

    async def effects(self, saga_id: str) -> list[Effect]:
        """Every effect applied for `saga_id`, in the order applied."""
        ...


class InMemoryLedger:
    """An `EffectLedger` in memory. It also counts applications attempted under a seen key."""

    def __init__(self) -> None:
        self._effects: dict[str, Effect] = {}
        self.duplicates = 0

    async def apply(self, effect: Effect) -> bool:
        """See `EffectLedger.apply`."""
        if effect.key in self._effects:
            self.duplicates += 1
            return False
        self._effects[effect.key] = effect
        return True

    async def effects(self, saga_id: str) -> list[Effect]:
        """See `EffectLedger.effects`."""
        found = [e for e in self._effects.values() if e.saga_id == saga_id]
        return sorted(found, key=lambda e: e.at_ns)


@dataclass
class FaultPlan:
    """Faults to inject into scripted steps, by step name.

    Counts are per step and per process: "fail twice" fails the first two attempts.
    """

    transient: dict[str, int] = field(default_factory=dict)
    permanent: set[str] = field(default_factory=set)
    timeouts: dict[str, int] = field(default_factory=dict)
    crash_after_steps: set[str] = field(default_factory=set)
    compensation_transient: dict[str, int] = field(default_factory=dict)
    compensation_permanent: set[str] = field(default_factory=set)

    def fail_transiently(self, step: str, times: int = 1) -> FaultPlan:
        """The step's first `times` attempts raise a `RetryableError` before any effect."""
        self.transient[step] = times
        return self

    def fail_permanently(self, step: str) -> FaultPlan:
        """The step raises a `NonRetryableError` (a business failure) before any effect."""
        self.permanent.add(step)
        return self

    def time_out(self, step: str, times: int = 1) -> FaultPlan:
        """The step's first `times` attempts hang past the step's timeout."""
        self.timeouts[step] = times
        return self

    def crash_after(self, step: str) -> FaultPlan:
        """After applying its effect, the step raises `SimulatedCrash` (once)."""
        self.crash_after_steps.add(step)
        return self

    def fail_compensation(self, step: str, times: int | None = 1) -> FaultPlan:
        """The step's compensation fails `times` times (retryably), or always when None."""
        if times is None:
            self.compensation_permanent.add(step)
        else:
            self.compensation_transient[step] = times
        return self

    def _take(self, counts: dict[str, int], step: str) -> bool:
        if counts.get(step, 0) > 0:
            counts[step] -= 1
            return True
        return False


def scripted_step(
    name: str,
    ledger: EffectLedger,
    faults: FaultPlan | None = None,
    *,
    kind: StepKind = StepKind.COMPENSATABLE,
    compensate: bool = True,
    retry: RetryPolicy | None = None,
    timeout: float = 1.0,
) -> SagaStep[Any, Any]:
    """A step whose action and compensation apply effects to `ledger`, with `faults` injected."""
    plan = faults or FaultPlan()

    async def action(ctx: StepContext[Any]) -> JsonObject:
        if name in plan.permanent:
            raise NonRetryableError(f"{name} rejected", code="test.rejected")
        if plan._take(plan.transient, name):
            raise RetryableError(f"{name} unavailable", code="test.unavailable")
        if plan._take(plan.timeouts, name):
            await asyncio.sleep(timeout * 10)
        applied = await ledger.apply(Effect(ctx.saga_id, name, DO, ctx.idempotency_key, time.time_ns()))
        if name in plan.crash_after_steps:
            plan.crash_after_steps.discard(name)
            raise SimulatedCrash(f"crash after {name}")
        return {"step": name, "applied": applied}

    async def compensation(ctx: StepContext[Any]) -> JsonObject:
        if name in plan.compensation_permanent or plan._take(plan.compensation_transient, name):
            raise RetryableError(f"undo of {name} unavailable", code="test.unavailable")
        # Like a real participant, undo only what was done: the engine also compensates a step
        # whose last attempt failed retryably (its outcome unknown), which may have done nothing.
        applied = await ledger.effects(ctx.saga_id)
        if any(e.step == name and e.kind == DO for e in applied):
            await ledger.apply(Effect(ctx.saga_id, name, UNDO, ctx.idempotency_key, time.time_ns()))
        return {}

    return SagaStep(
        name=name,
        action=action,
        compensation=compensation if compensate and kind is StepKind.COMPENSATABLE else None,
        kind=kind,
        retry=retry or RetryPolicy(initial_interval=0.001, maximum_interval=0.01, maximum_attempts=4),
        timeout=timeout,
    )


def scripted_saga(
    name: str,
    steps: Sequence[str],
    ledger: EffectLedger,
    faults: FaultPlan | None = None,
    *,
    compensation_attempts: int = 4,
    timeout: float = 1.0,
) -> Saga[Any]:
    """A saga of compensatable scripted steps named `steps`."""
    return Saga(
        name=name,
        steps=[scripted_step(step, ledger, faults, timeout=timeout) for step in steps],
        compensation_retry=RetryPolicy(
            initial_interval=0.001, maximum_interval=0.01, maximum_attempts=compensation_attempts
        ),
    )


def invariant_violations(state: SagaState, definition: Saga[Any], effects: Sequence[Effect]) -> list[str]:
    """What is wrong with a finished saga's outcome; an empty list when all is well.

    Checks: the saga is COMPLETED with every step applied exactly once and nothing undone, or
    COMPENSATED with every applied (compensatable) effect undone exactly once, in reverse order;
    and no step's effect was applied under more than one idempotency key.
    """
    problems: list[str] = []
    keys: dict[tuple[str, str], set[str]] = {}
    for effect in effects:
        keys.setdefault((effect.step, effect.kind), set()).add(effect.key)
    problems += [
        f"{step} {kind} applied under keys {sorted(k)}" for (step, kind), k in keys.items() if len(k) > 1
    ]
    done = [e.step for e in effects if e.kind == DO]
    undone = [e.step for e in effects if e.kind == UNDO]
    if state.status is SagaStatus.COMPLETED:
        expected = [step.name for step in definition.steps]
        if done != expected or undone:
            problems.append(f"COMPLETED but applied {done} and undid {undone}; expected {expected}")
    elif state.status is SagaStatus.COMPENSATED:
        undoable = {s.name for s in definition.steps if s.compensation is not None}
        expected_undo = [step for step in reversed(done) if step in undoable]
        if undone != expected_undo:
            problems.append(f"COMPENSATED: undid {undone}, expected {expected_undo} (applied {done})")
        last_do = max((e.at_ns for e in effects if e.kind == DO), default=0)
        if any(e.at_ns < last_do for e in effects if e.kind == UNDO):
            problems.append("a compensation ran before the last action")
    else:
        problems.append(f"saga ended {state.status}, neither COMPLETED nor COMPENSATED")
    return problems


def assert_invariants(state: SagaState, definition: Saga[Any], effects: Sequence[Effect]) -> None:
    """Raise AssertionError listing every violated invariant (see `invariant_violations`)."""
    problems = invariant_violations(state, definition, effects)
    if problems:
        raise AssertionError(f"saga {state.saga_id}: " + "; ".join(problems))
