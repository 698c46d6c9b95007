"""Driving one saga: run its steps (or compensations) one attempt at a time, under its lease.

Each attempt runs inside the step hooks, with a timeout, as the current step (see
`ecommerce_saga.saga.context`); its outcome goes through `ecommerce_saga.saga.transitions` and is
saved before the next attempt begins (past the point of no return, a definition may let a
success wait for the next save: `Saga.save_every_step`). A heartbeat renews the lease while an
attempt runs long, but not for ever: an attempt that outlives its timeout by a lease's length
(its cancellation was swallowed) makes the heartbeat cancel the run and give the saga up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel

from ecommerce_saga.saga import transitions
from ecommerce_saga.saga.context import _current as _current_step
from ecommerce_saga.saga.definition import Saga
from ecommerce_saga.saga.errors import LeaseLostError, StoreUnavailableError
from ecommerce_saga.saga.leased_store import LeasedStore
from ecommerce_saga.saga.observers import EventKind, Notifier
from ecommerce_saga.saga.state import (
    AttemptStatus,
    ErrorInfo,
    HistoryEntry,
    Phase,
    SagaState,
    SagaStatus,
    utcnow,
)
from ecommerce_saga.saga.steps import JsonObject, SagaStep, StepContext, StepKind, StepWrites

# Records keep the engine's logger name, as before the runner left engine.py: log configuration
# may refer to it.
logger = logging.getLogger("ecommerce_saga.saga.engine")

StepHook = Callable[[StepContext[Any]], contextlib.AbstractContextManager[object]]
"""Wraps every attempt of an action or compensation (a tracing span, say); see `SagaEngine.add_step_hook`."""


async def _in_context(ctx: StepContext[Any], call: Callable[[StepContext[Any]], Awaitable[object]]) -> object:
    """Run `call(ctx)` with `ctx` as the current step (see `ecommerce_saga.saga.context`)."""
    token = _current_step.set(ctx)
    try:
        return await call(ctx)
    finally:
        _current_step.reset(token)


class _HandOver(Exception):  # noqa: N818 - a signal within the runner, not an error
    """Raised instead of starting an attempt once the worker is shutting down."""


def _stored_output(step: SagaStep[Any, Any], output: object) -> JsonObject:
    """An action's return value as the saga stores it: a model as JSON, a mapping as is, None as ``{}``."""
    if output is None:
        return {}
    if isinstance(output, BaseModel):
        if step.output is not None and not isinstance(output, step.output):
            raise TypeError(
                f"step {step.name!r} returned a {type(output).__name__}, not a {step.output.__name__}"
            )
        return output.model_dump(mode="json")
    if isinstance(output, dict):
        return output
    raise TypeError(f"step {step.name!r} returned a {type(output).__name__}, not a model, a dict or None")


class SagaRunner:
    """Drives sagas for one worker: forward through the steps, or back through the compensations.

    Args:
        worker: This worker (its lease, clock and definitions).
        notifier: Receives every lifecycle event.
        rng: The randomness for retry jitter.
        is_outage: Which exceptions of a step are a store's outage (see `SagaEngine`).
    """

    def __init__(
        self,
        worker: LeasedStore,
        notifier: Notifier,
        rng: random.Random,
        *,
        is_outage: Callable[[BaseException], bool] | None = None,
    ) -> None:
        self._worker = worker
        self._notifier = notifier
        self._rng = rng
        self._is_outage = is_outage or (lambda exc: False)
        self._step_hooks: list[StepHook] = []
        self._unsaved: set[str] = set()
        """Sagas whose state in hand holds successes not saved yet (`Saga.save_every_step`)."""
        self._overdue_at: dict[str, tuple[float, str, int]] = {}
        """Sagas with an attempt in flight: when (`loop.time()`) the attempt is overdue, the step
        and the attempt number. Overdue is a lease's length past the step's timeout: the timeout
        cancelled the attempt, and the attempt did not stop."""
        self._ridden: dict[str, tuple[str, int, object]] = {}
        """Sagas whose open attempt's writes the store made with the save that opened it
        (`SagaStep.riding`): the step, the attempt and the output they stand for."""
        self.draining = asyncio.Event()
        """Set when the worker shuts down: each run hands its saga over once its attempt in
        flight has ended and its result is saved (see `SagaEngine.stop`)."""

    def add_step_hook(self, hook: StepHook) -> None:
        """Run every attempt inside ``with hook(ctx):`` (see `SagaEngine.add_step_hook`)."""
        self._step_hooks.append(hook)

    async def run(self, state: SagaState) -> SagaState | None:
        """Drive one saga while holding its lease; on any crash-like stop leave it for recovery.

        Returns the state the saga was left in, or None if the run stopped without knowing it.
        """
        me = asyncio.current_task()
        heartbeat = asyncio.create_task(self._heartbeat(state, me))
        try:
            return await self._drive(state)
        except _HandOver:  # the saga is saved as it stands: the next worker takes it from there
            with contextlib.suppress(Exception):  # unreleased, the lease still expires
                await self._worker.release(state)
        except LeaseLostError:
            self._notifier.emit(EventKind.LEASE_LOST, state)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._worker.release(state))
            raise
        except StoreUnavailableError as exc:  # an outage, not a bug: no traceback
            logger.warning(
                "saga run paused: %s; it resumes when its lease expires",
                exc,
                extra={"saga_id": state.saga_id},
            )
        except Exception:
            logger.exception(
                "saga run stopped; it resumes when its lease expires", extra={"saga_id": state.saga_id}
            )
        except BaseException as exc:  # a simulated or real crash: write nothing more
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            logger.warning("saga run aborted: %r", exc, extra={"saga_id": state.saga_id})
        finally:
            heartbeat.cancel()
            self._unsaved.discard(state.saga_id)
            self._ridden.pop(state.saga_id, None)
        return None

    async def _drive(self, state: SagaState) -> SagaState:
        while state.status.is_active:
            if self.draining.is_set():
                if state.saga_id in self._unsaved:  # hand over what was done, not only what was saved
                    state = await self._save(state)
                raise _HandOver
            definition = self._worker.definition_of(state)
            if state.status is SagaStatus.RUNNING:
                state = await self._forward(definition, state)
            else:
                state = await self._compensate(definition, state)
        return state

    async def _heartbeat(self, state: SagaState, runner: asyncio.Task[Any] | None) -> None:
        saga_id, fencing_token = state.saga_id, state.fencing_token
        interval = self._worker.lease_ms / 3000
        given_up = False
        while True:
            await asyncio.sleep(interval)
            overdue = self._overdue(saga_id)
            if overdue is not None:
                # the run waits for an attempt that would not stop: no renewal, and the run is
                # cancelled (again at each tick, until it has ended), so that it frees the lease
                # and recovery runs the step again
                if not given_up:
                    given_up = True
                    step, attempt = overdue
                    detail = "it would not stop after its timeout; the saga is handed over"
                    self._notifier.emit(
                        EventKind.ATTEMPT_ABANDONED, state, step=step, attempt=attempt, detail=detail
                    )
                if runner is not None:
                    runner.cancel()
                continue
            try:
                held = await self._worker.renew(saga_id, fencing_token)
            except StoreUnavailableError as exc:
                logger.warning("lease renewal failed: %s", exc, extra={"saga_id": saga_id})
                continue
            except Exception:
                logger.warning("lease renewal failed", exc_info=True, extra={"saga_id": saga_id})
                continue
            if not held and runner is not None:
                logger.warning("lease lost; stopping", extra={"saga_id": saga_id})
                self._notifier.emit(EventKind.LEASE_LOST, state)
                runner.cancel()
                return

    def _overdue(self, saga_id: str) -> tuple[str, int] | None:
        """The step and attempt number of the saga's attempt in flight if it is overdue, else None."""
        overdue = self._overdue_at.get(saga_id)
        if overdue is None or asyncio.get_running_loop().time() < overdue[0]:
            return None
        _, step, attempt = overdue
        return step, attempt

    # ------------------------------------------------------------------ forward

    async def _forward(self, definition: Saga[Any], state: SagaState) -> SagaState:
        step = definition.steps[state.current_step]
        state, attempt = await self._ensure_open(state, step.name, Phase.ACTION)
        await self._sleep_until_due(attempt)
        ridden = self._ridden.pop(state.saga_id, None)
        if ridden is not None and ridden[:2] == (step.name, attempt.attempt):
            output = ridden[2]  # the store made the attempt's writes with the save that opened it
        else:
            ctx = transitions.step_context(definition, state, step, attempt.attempt, compensating=False)
            try:
                output = await self._attempt(ctx, step.action, step.timeout)
            except Exception as exc:  # noqa: BLE001 - every failure is recorded and classified
                self._pause_on_outage(step.name, exc)
                error = transitions.error_info(exc, step.timeout)
                return await self._forward_failed(definition, state, step, attempt, error)
        try:
            stored = _stored_output(step, output)
        except (TypeError, ValueError) as exc:  # a bug in the step: retried, then the saga compensates
            return await self._forward_failed(
                definition, state, step, attempt, transitions.error_info(exc, 0)
            )
        return await self._forward_succeeded(definition, state, step, attempt, stored)

    async def _forward_succeeded(
        self,
        definition: Saga[Any],
        state: SagaState,
        step: SagaStep[Any, Any],
        entry: HistoryEntry,
        output: dict[str, Any],
    ) -> SagaState:
        transitions.step_succeeded(state, step, entry, output)
        self._notifier.emit(
            EventKind.STEP_SUCCEEDED,
            state,
            step=step.name,
            attempt=entry.attempt,
            duration=entry.duration_seconds,
        )
        worker = self._worker
        transitions.advance(definition, state, step, worker=worker.worker_id, now_ms=worker.now_ms)
        if (
            not definition.save_every_step
            and step.kind is not StepKind.COMPENSATABLE
            and state.status is SagaStatus.RUNNING
            and definition.steps[state.current_step].kind is StepKind.RETRIABLE
        ):
            return self._keep_unsaved(state)  # committed: after a crash, it runs again
        if (
            not definition.save_compensatable_steps
            and step.kind is StepKind.COMPENSATABLE
            and state.status is SagaStatus.RUNNING
            and definition.steps[state.current_step].kind is StepKind.COMPENSATABLE
        ):
            # after a crash it runs again; if the saga then compensates, it is compensated too
            return self._keep_unsaved(state)
        state = await self._save_opening(definition, state)
        self._notifier.transition(state)
        return state

    async def _forward_failed(
        self,
        definition: Saga[Any],
        state: SagaState,
        step: SagaStep[Any, Any],
        entry: HistoryEntry,
        error: ErrorInfo,
    ) -> SagaState:
        self._record_failure(EventKind.STEP_FAILED, state, entry, error)
        if (
            error.retryable
            and step.retry.allows_another(entry.attempt)
            and not transitions.past_deadline(state, self._worker.now_ms)
        ):
            return await self._retry(state, entry, step.retry.delay(entry.attempt, self._rng))
        transitions.stop_forward(definition, state, step, error, worker=self._worker.worker_id)
        return await self._save_transition(state)

    # ------------------------------------------------------------------ compensation

    async def _compensate(self, definition: Saga[Any], state: SagaState) -> SagaState:
        name = state.compensation_plan[state.compensation_position]
        step = definition.compensation_step(name)
        state, entry = await self._ensure_open(state, name, Phase.COMPENSATION)
        await self._sleep_until_due(entry)
        ctx = transitions.step_context(definition, state, step, entry.attempt, compensating=True)
        assert step.compensation is not None  # noqa: S101 - only steps with one are planned
        try:
            await self._attempt(ctx, step.compensation, step.timeout)
        except Exception as exc:  # noqa: BLE001 - every failure is recorded and classified
            self._pause_on_outage(name, exc)
            error = transitions.error_info(exc, step.timeout)
            return await self._compensation_failed(definition, state, entry, error)
        transitions.close_attempt(entry, AttemptStatus.SUCCEEDED)
        self._notifier.emit(
            EventKind.COMPENSATION_SUCCEEDED,
            state,
            step=name,
            attempt=entry.attempt,
            duration=entry.duration_seconds,
        )
        transitions.advance_compensation(state, worker=self._worker.worker_id)
        if not definition.save_every_step and state.status is SagaStatus.COMPENSATING:
            return self._keep_unsaved(state)  # after a crash, the compensations run again from there
        return await self._save_transition(state)

    async def _compensation_failed(
        self, definition: Saga[Any], state: SagaState, entry: HistoryEntry, error: ErrorInfo
    ) -> SagaState:
        self._record_failure(EventKind.COMPENSATION_FAILED, state, entry, error)
        policy = definition.compensation_retry
        if error.retryable and policy.allows_another(entry.attempt):
            return await self._retry(state, entry, policy.delay(entry.attempt, self._rng))
        transitions.park(state, SagaStatus.COMPENSATING, error)
        return await self._save_transition(state)

    # ------------------------------------------------------------------ helpers

    def _pause_on_outage(self, step: str, exc: Exception) -> None:
        """Raise `StoreUnavailableError` if `exc` is a store's outage: `run` then pauses the saga.

        The attempt stays open in the store (nothing is written: the store is likely down too)
        and is closed as interrupted when the saga is recovered, so an outage does not use up
        the step's retries nor make the saga compensate.
        """
        if isinstance(exc, StoreUnavailableError):
            raise exc
        if self._is_outage(exc):
            raise StoreUnavailableError(f"step {step} met an outage ({type(exc).__name__})") from exc

    def _record_failure(
        self, kind: EventKind, state: SagaState, entry: HistoryEntry, error: ErrorInfo
    ) -> None:
        transitions.close_attempt(entry, AttemptStatus.FAILED, error)
        self._notifier.emit(
            kind, state, step=entry.step, attempt=entry.attempt, error=error, duration=entry.duration_seconds
        )

    async def _retry(self, state: SagaState, failed: HistoryEntry, delay: float) -> SagaState:
        transitions.schedule_retry(state, failed, delay=delay, worker=self._worker.worker_id)
        state = await self._save(state)
        self._notifier.emit(
            EventKind.RETRY_SCHEDULED,
            state,
            step=failed.step,
            attempt=failed.attempt + 1,
            detail=f"in {delay:.3f}s",
        )
        return state

    async def _save_transition(self, state: SagaState) -> SagaState:
        state = await self._save(state)
        self._notifier.transition(state)
        return state

    def _keep_unsaved(self, state: SagaState) -> SagaState:
        """Go on without saving `state` (its successes go with the next save), as if it were saved."""
        self._unsaved.add(state.saga_id)
        self._notifier.transition(state)
        return state

    async def _save(self, state: SagaState) -> SagaState:
        saved = await self._worker.save(state)
        self._unsaved.discard(state.saga_id)
        return saved

    async def _save_opening(self, definition: Saga[Any], state: SagaState) -> SagaState:
        """Save `state`, which may open an attempt of its current step: if that step rides on
        this save (`SagaStep.riding`), the store makes the attempt's writes right after it."""
        entry = state.open_entry()
        writes = None
        if state.status is SagaStatus.RUNNING and entry is not None and entry.phase is Phase.ACTION:
            writes = self.writes_of(definition, state)
        if writes is None:
            return await self._save(state)
        saved, made = await self._worker.save_and_write(state, writes.writes)
        self._unsaved.discard(state.saga_id)
        if made:
            self.rode(saved, writes)
        return saved

    def writes_of(self, definition: Saga[Any], state: SagaState) -> StepWrites[Any] | None:
        """The writes of the open attempt of `state`'s current step, if it rides (`SagaStep.riding`)
        and builds some; None otherwise (a builder that fails is logged: the action will do)."""
        step = definition.steps[state.current_step]
        entry = state.open_entry()
        if step.writes is None or entry is None:
            return None
        ctx = transitions.step_context(definition, state, step, entry.attempt, compensating=False)
        try:
            writes = step.writes(ctx)
        except Exception:
            logger.exception("step %s: its writes could not be built", step.name,
                             extra={"saga_id": state.saga_id})  # fmt: skip
            return None
        return writes if writes is not None and writes.writes else None

    def rode(self, state: SagaState, writes: StepWrites[Any]) -> None:
        """The store made `writes`, the open attempt's, with the write that stored `state`: the
        attempt succeeded with their output, which the next run of the saga takes instead of
        running the action."""
        entry = state.open_entry()
        assert entry is not None  # noqa: S101 - the writes were built for it
        self._ridden[state.saga_id] = (entry.step, entry.attempt, writes.output)
        if writes.made is not None:
            try:
                writes.made()
            except Exception:  # the writes are made all the same: only a cache may miss them
                logger.exception("step %s: its writes' callback failed", entry.step,
                                 extra={"saga_id": state.saga_id})  # fmt: skip

    async def _ensure_open(self, state: SagaState, step: str, phase: Phase) -> tuple[SagaState, HistoryEntry]:
        """The open attempt of `step`, recording one first if there is none (write-ahead)."""
        entry = state.open_entry()
        if entry is not None and entry.step == step and entry.phase is phase:
            return state, entry
        attempt = state.attempts_of(step, phase) + 1
        transitions.open_attempt(state, step, phase, worker=self._worker.worker_id, attempt=attempt)
        state = await self._save(state)
        opened = state.open_entry()
        assert opened is not None  # noqa: S101 - just recorded
        return state, opened

    async def _attempt(
        self, ctx: StepContext[Any], call: Callable[[StepContext[Any]], Awaitable[object]], timeout: float
    ) -> object:
        overdue = asyncio.get_running_loop().time() + timeout + self._worker.lease_ms / 1000
        self._overdue_at[ctx.saga_id] = (overdue, ctx.step, ctx.attempt)
        try:
            with contextlib.ExitStack() as hooks:
                for hook in self._step_hooks:
                    hooks.enter_context(hook(ctx))
                return await asyncio.wait_for(_in_context(ctx, call), timeout)
        finally:
            self._overdue_at.pop(ctx.saga_id, None)

    async def _sleep_until_due(self, entry: HistoryEntry) -> None:
        """Wait until a scheduled retry is due; a shutdown cuts the wait short and hands the saga over."""
        delay = (entry.started_at - utcnow()).total_seconds()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.draining.wait(), delay)
        if self.draining.is_set():
            raise _HandOver
