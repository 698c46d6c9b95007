"""The saga engine: runs sagas step by step, durably, with retries, compensation and recovery.

Write-ahead: every transition is stored before the engine acts on it. A saga costs one write to
start (the saga and its first step's STARTED record together) and one write per step after that
(a step's result and the next step's STARTED record together, or the final status), so a saga of
N steps that succeeds first time takes N + 1 writes. Each retry and each compensation step adds
one write; a recovery adds two (the claim, and the interrupted attempt closed with the next one
opened); a lease renewal adds one per ``lease_seconds / 3`` of a step that runs that long.

A compensation may run while a timed-out action is still in flight at the participant (the
engine cannot stop a remote call), so a participant must make "undo before do" safe: the undo
succeeds as a no-op and leaves a mark that makes the late "do" refuse (a tombstone).

Concurrency: a worker runs a saga only while it holds the saga's lease (owner, expiry, fencing
token). Every write is conditional on the version and fencing token the worker read; another
worker that claims the saga bumps both, so the first worker's next write fails with
`LeaseLostError` and it stops touching the saga.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from types import MappingProxyType
from typing import Any

from ecommerce_saga.saga.context import _current as _current_step
from ecommerce_saga.saga.definition import (
    Action,
    JsonObject,
    Saga,
    SagaStep,
    StepContext,
    StepKind,
    build_registry,
)
from ecommerce_saga.saga.errors import (
    ConcurrencyError,
    LeaseLostError,
    SagaConflictError,
    SagaNotFoundError,
    UnknownSagaTypeError,
    error_code,
    is_retryable,
)
from ecommerce_saga.saga.observers import EventKind, LoggingObserver, SagaEvent, SagaObserver
from ecommerce_saga.saga.state import (
    AttemptStatus,
    ErrorInfo,
    HistoryEntry,
    Phase,
    SagaState,
    SagaStatus,
    utcnow,
)
from ecommerce_saga.saga.store import SagaExpectation, SagaQuery, SagaStore

logger = logging.getLogger(__name__)

INTERRUPTED = ErrorInfo(
    type="WorkerLost",
    message="the worker running this attempt stopped before recording its outcome",
    code="saga.interrupted",
)


def _error_info(exc: BaseException, timeout: float) -> ErrorInfo:
    if isinstance(exc, TimeoutError):
        return ErrorInfo(type="TimeoutError", message=f"timed out after {timeout:g}s", code="saga.timeout")
    return ErrorInfo(
        type=type(exc).__name__,
        message=str(exc) or type(exc).__name__,
        code=error_code(exc),
        retryable=is_retryable(exc),
    )


StepHook = Callable[[StepContext], contextlib.AbstractContextManager[object]]
"""Wraps every attempt of an action or compensation (a tracing span, say); see `SagaEngine.add_step_hook`."""


async def _in_context(ctx: StepContext, call: Action) -> JsonObject | None:
    """Run `call(ctx)` with `ctx` as the current step (see `ecommerce_saga.saga.context`)."""
    token = _current_step.set(ctx)
    try:
        return await call(ctx)
    finally:
        _current_step.reset(token)


class SagaEngine:
    """Runs registered sagas against a `SagaStore`.

    Args:
        store: Where saga state lives.
        definitions: The sagas this engine can run (and recover).
        worker_id: This worker's identity, recorded as lease owner; unique per process.
        lease_seconds: How long a claim lasts without renewal.
        recovery_interval: Seconds between recovery passes of the background loop.
        observers: Receive every lifecycle event; defaults to a `LoggingObserver`.
        clock: Seconds since the epoch (injectable for tests).
    """

    def __init__(
        self,
        store: SagaStore,
        definitions: Sequence[Saga],
        *,
        worker_id: str | None = None,
        lease_seconds: float = 15.0,
        recovery_interval: float = 5.0,
        observers: Sequence[SagaObserver] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.worker_id = worker_id or f"worker-{uuid.uuid4().hex[:12]}"
        self._registry: Mapping[str, Saga] = build_registry(definitions)
        self._lease_ms = int(lease_seconds * 1000)
        self._recovery_interval = recovery_interval
        self._observers: list[SagaObserver] = (
            list(observers) if observers is not None else [LoggingObserver()]
        )
        self._clock = clock
        self._rng = random.Random()
        self._tasks: dict[str, asyncio.Task[SagaState | None]] = {}
        self._recovery_task: asyncio.Task[SagaState | None] | None = None
        self._step_hooks: list[StepHook] = []

    # ------------------------------------------------------------------ public API

    @property
    def definitions(self) -> Mapping[str, Saga]:
        """The registered saga definitions by name."""
        return self._registry

    def add_observer(self, observer: SagaObserver) -> None:
        """Register one more observer."""
        self._observers.append(observer)

    def add_step_hook(self, hook: StepHook) -> None:
        """Run every attempt of an action or compensation inside ``with hook(ctx):``.

        The attempt's outcome, an exception or a timeout included, passes through the hook (so a
        tracing span can record it); a hook must not swallow it, and must be fast and not raise.
        """
        self._step_hooks.append(hook)

    async def start(
        self,
        saga_type: str,
        saga_input: Mapping[str, Any],
        *,
        saga_id: str | None = None,
        correlation_id: str | None = None,
    ) -> SagaState:
        """Start a saga and return its initial state; it then runs in the background.

        Idempotent: if a saga with `saga_id` exists, it is returned unchanged and not run again.

        Raises:
            UnknownSagaTypeError: If no definition is registered as `saga_type`.
        """
        definition = self._definition(saga_type)
        now = self._now_ms()
        state = SagaState(
            saga_id=saga_id or uuid.uuid4().hex,
            saga_type=saga_type,
            input=dict(saga_input),
            correlation_id=correlation_id,
            lease_owner=self.worker_id,
            lease_expires_at_ms=now + self._lease_ms,
            fencing_token=1,
            deadline_at_ms=now + int(definition.deadline * 1000) if definition.deadline else None,
        )
        self._open(state, definition.steps[0].name, Phase.ACTION)
        if not await self.store.create(state):
            existing = await self.store.get(state.saga_id)
            if existing is None:  # pragma: no cover - deleted between the two calls
                raise SagaNotFoundError(state.saga_id)
            if existing.saga_type != saga_type:
                msg = f"saga {state.saga_id} exists as a {existing.saga_type!r} saga, not {saga_type!r}"
                raise SagaConflictError(msg)
            return existing
        self._emit(EventKind.SAGA_STARTED, state)
        self._emit(EventKind.STEP_STARTED, state, step=definition.steps[0].name, attempt=1)
        self._spawn(state)
        return state

    async def wait(self, saga_id: str, timeout: float) -> SagaState:
        """Wait up to `timeout` seconds for the saga to finish or park; return its state then."""
        deadline = time.monotonic() + timeout
        task = self._tasks.get(saga_id)
        if task is not None:
            await asyncio.wait({task}, timeout=timeout)
            finished = task.result() if task.done() and not task.cancelled() else None
            if finished is not None:  # the state the run ended with: no need to read it back
                return finished
        state = await self.get(saga_id)
        while state.status.is_active and time.monotonic() < deadline:
            await asyncio.sleep(min(0.05, max(deadline - time.monotonic(), 0)))
            state = await self.get(saga_id)
        return state

    async def get(self, saga_id: str) -> SagaState:
        """The saga with its full history.

        Raises:
            SagaNotFoundError: If there is no such saga.
        """
        state = await self.store.get(saga_id)
        if state is None:
            raise SagaNotFoundError(saga_id)
        return state

    async def find(self, query: SagaQuery) -> tuple[list[SagaState], int]:
        """Sagas matching `query` (by status, type, correlation id, age), newest first."""
        return await self.store.find(query)

    def is_running_here(self, saga_id: str) -> bool:
        """True while this engine is driving the saga."""
        return saga_id in self._tasks

    # ------------------------------------------------------------------ recovery

    async def recover_once(self, limit: int = 100) -> int:
        """Claim active sagas whose lease expired and resume them; return how many were claimed."""
        claimed = 0
        while claimed < limit:
            state = await self.store.claim(
                self.worker_id, self._now_ms(), self._lease_ms, saga_types=self._registry.keys()
            )
            if state is None:
                break
            stale = self._tasks.pop(state.saga_id, None)
            if stale is not None:
                stale.cancel()
            claimed += 1
            try:
                state = await self._reopen_interrupted(state)
            except LeaseLostError:  # another worker claimed it in between: it is theirs
                self._emit(EventKind.LEASE_LOST, state)
                continue
            self._emit(EventKind.SAGA_RECOVERED, state)
            self._spawn(state)
        return claimed

    async def start_background(self) -> None:
        """Recover once now, then keep recovering every `recovery_interval` seconds."""
        await self.recover_once()
        self._recovery_task = asyncio.create_task(self._recovery_loop(), name="saga-recovery")

    async def stop(self) -> None:
        """Stop recovering and stop driving sagas, giving their leases up for other workers."""
        if self._recovery_task is not None:
            self._recovery_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recovery_task
            self._recovery_task = None
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _recovery_loop(self) -> None:
        while True:
            await asyncio.sleep(self._recovery_interval)
            try:
                await self.recover_once()
            except Exception:
                logger.exception("saga recovery pass failed; retrying at the next interval")

    async def _reopen_interrupted(self, state: SagaState) -> SagaState:
        """Close the attempt that was in flight when its worker stopped, and open a new one."""
        entry = state.open_entry()
        if entry is None:
            return state
        self._close(entry, AttemptStatus.FAILED, INTERRUPTED)
        self._open(state, entry.step, entry.phase, attempt=entry.attempt + 1)
        return await self._save(state)

    # ------------------------------------------------------------------ operator functions

    async def resume(self, saga_id: str, *, actor: str, reason: str) -> SagaState:
        """Resume a parked (``REQUIRES_ATTENTION``) saga where it stopped, with a fresh retry budget.

        Raises:
            SagaNotFoundError: If there is no such saga.
            SagaConflictError: If the saga is not parked.
        """
        if (await self.get(saga_id)).status is not SagaStatus.REQUIRES_ATTENTION:
            raise SagaConflictError(f"saga {saga_id} is not parked; only parked sagas resume")
        state = await self._force_claim(saga_id, SagaExpectation(SagaStatus.REQUIRES_ATTENTION))
        if state is None:
            raise SagaConflictError(f"saga {saga_id} is not parked; only parked sagas resume")
        self._record_operator(state, "resume", actor, reason)
        state.status = state.parked_from or SagaStatus.COMPENSATING
        state.parked_from = None
        if state.status is SagaStatus.RUNNING:
            self._open(state, self._definition(state.saga_type).steps[state.current_step].name, Phase.ACTION)
        else:
            self._open(state, state.compensation_plan[state.compensation_position], Phase.COMPENSATION)
        state = await self._save(state)
        self._emit(EventKind.OPERATOR_ACTION, state, detail=f"resume by {actor}: {reason}")
        self._spawn(state)
        return state

    async def cancel(self, saga_id: str, *, actor: str, reason: str) -> SagaState:
        """Stop a running saga and compensate what it did, in reverse order.

        Raises:
            SagaNotFoundError: If there is no such saga.
            SagaConflictError: If the saga is not running, or has passed its point of no return.
        """
        seen = await self.get(saga_id)
        self._check_cancellable(seen)
        task = self._tasks.pop(saga_id, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        state = await self._force_claim(saga_id, SagaExpectation(SagaStatus.RUNNING, seen.current_step))
        if state is None:  # it moved on meanwhile
            self._check_cancellable(await self.get(saga_id))
            raise SagaConflictError(f"saga {saga_id} changed while it was being cancelled; try again")
        entry = state.open_entry()
        if entry is not None:
            self._close(
                entry,
                AttemptStatus.FAILED,
                ErrorInfo(type="Cancelled", message=reason, code="saga.cancelled", retryable=False),
            )
        self._record_operator(state, "cancel", actor, reason)
        failure = ErrorInfo(type="Cancelled", message=reason, code="saga.cancelled", retryable=False)
        definition = self._definition(state.saga_type)
        self._begin_compensation(definition, state, failure, include_current=entry is not None)
        state = await self._save(state)
        self._emit(EventKind.OPERATOR_ACTION, state, detail=f"cancel by {actor}: {reason}")
        self._emit_transition(definition, state)
        self._after_transition(state)
        return state

    def _check_cancellable(self, state: SagaState) -> None:
        if state.status is not SagaStatus.RUNNING:
            raise SagaConflictError(
                f"saga {state.saga_id} is {state.status}; only running sagas can be cancelled"
            )
        step = self._definition(state.saga_type).steps[state.current_step]
        if step.kind is not StepKind.COMPENSATABLE:
            raise SagaConflictError(f"saga {state.saga_id} has passed its point of no return ({step.name})")

    async def _force_claim(self, saga_id: str, expect: SagaExpectation) -> SagaState | None:
        """Take the saga's lease from whoever holds it, if it is still as expected."""
        return await self.store.claim(
            self.worker_id,
            self._now_ms(),
            self._lease_ms,
            saga_types=self._registry.keys(),
            saga_id=saga_id,
            force=True,
            expect=expect,
        )

    def _record_operator(self, state: SagaState, action: str, actor: str, reason: str) -> None:
        now = utcnow()
        state.history.append(
            HistoryEntry(
                step=action,
                phase=Phase.OPERATOR,
                status=AttemptStatus.SUCCEEDED,
                started_at=now,
                ended_at=now,
                worker=self.worker_id,
                actor=actor,
                reason=reason,
            )
        )

    # ------------------------------------------------------------------ driving a saga

    def _spawn(self, state: SagaState) -> None:
        task = asyncio.create_task(self._run(state), name=f"saga-{state.saga_id}")
        self._tasks[state.saga_id] = task
        task.add_done_callback(lambda done: self._forget(state.saga_id, done))

    def _forget(self, saga_id: str, task: asyncio.Task[SagaState | None]) -> None:
        if self._tasks.get(saga_id) is task:
            del self._tasks[saga_id]

    def _after_transition(self, state: SagaState) -> None:
        if state.status.is_active:
            self._spawn(state)

    async def _run(self, state: SagaState) -> SagaState | None:
        """Drive one saga while holding its lease; on any crash-like stop leave it for recovery.

        Returns the state the saga was left in, or None if the run stopped without knowing it.
        """
        me = asyncio.current_task()
        heartbeat = asyncio.create_task(self._heartbeat(state, me))
        try:
            while state.status.is_active:
                definition = self._definition(state.saga_type)
                if state.status is SagaStatus.RUNNING:
                    state = await self._forward(definition, state)
                else:
                    state = await self._compensate(definition, state)
            return state
        except LeaseLostError:
            self._emit(EventKind.LEASE_LOST, state)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.store.release(state.saga_id, self.worker_id, state.fencing_token))
            raise
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
        return None

    async def _heartbeat(self, state: SagaState, runner: asyncio.Task[Any] | None) -> None:
        saga_id, fencing_token = state.saga_id, state.fencing_token
        interval = self._lease_ms / 3000
        while True:
            await asyncio.sleep(interval)
            try:
                held = await self.store.renew(
                    saga_id, self.worker_id, fencing_token, self._now_ms() + self._lease_ms
                )
            except Exception:
                logger.warning("lease renewal failed", exc_info=True, extra={"saga_id": saga_id})
                continue
            if not held and runner is not None:
                logger.warning("lease lost; stopping", extra={"saga_id": saga_id})
                self._emit(EventKind.LEASE_LOST, state)
                runner.cancel()
                return

    async def _forward(self, definition: Saga, state: SagaState) -> SagaState:
        step = definition.steps[state.current_step]
        state, attempt = await self._ensure_open(state, step.name, Phase.ACTION)
        await self._sleep_until_due(attempt)
        ctx = self._context(state, step, attempt.attempt, compensating=False)
        try:
            output = await self._attempt(ctx, step.action, step.timeout)
        except Exception as exc:  # noqa: BLE001 - every failure is recorded and classified
            return await self._forward_failed(
                definition, state, step, attempt, _error_info(exc, step.timeout)
            )
        return await self._forward_succeeded(definition, state, step, attempt, output or {})

    async def _forward_succeeded(
        self, definition: Saga, state: SagaState, step: SagaStep, entry: HistoryEntry, output: dict[str, Any]
    ) -> SagaState:
        self._close(entry, AttemptStatus.SUCCEEDED)
        state.outputs[step.name] = output
        state.current_step += 1
        self._emit(
            EventKind.STEP_SUCCEEDED,
            state,
            step=step.name,
            attempt=entry.attempt,
            duration=entry.duration_seconds,
        )
        if state.current_step == len(definition.steps):
            state.status = SagaStatus.COMPLETED
        elif step.kind is StepKind.COMPENSATABLE and self._past_deadline(state):
            # Past the pivot the saga is committed: a deadline must not undo it, only stop it early.
            failure = ErrorInfo(
                type="DeadlineExceeded",
                message="the saga's deadline passed",
                code="saga.deadline_exceeded",
                retryable=False,
            )
            self._begin_compensation(definition, state, failure, include_current=False)
        else:
            self._open(state, definition.steps[state.current_step].name, Phase.ACTION)
        state = await self._save(state)
        self._emit_transition(definition, state)
        return state

    async def _forward_failed(
        self, definition: Saga, state: SagaState, step: SagaStep, entry: HistoryEntry, error: ErrorInfo
    ) -> SagaState:
        self._close(entry, AttemptStatus.FAILED, error)
        self._emit(
            EventKind.STEP_FAILED,
            state,
            step=step.name,
            attempt=entry.attempt,
            error=error,
            duration=entry.duration_seconds,
        )
        if error.retryable and step.retry.allows_another(entry.attempt) and not self._past_deadline(state):
            delay = step.retry.delay(entry.attempt, self._rng)
            self._open(state, step.name, Phase.ACTION, attempt=entry.attempt + 1, delay=delay)
            state = await self._save(state)
            self._emit(
                EventKind.RETRY_SCHEDULED,
                state,
                step=step.name,
                attempt=entry.attempt + 1,
                detail=f"in {delay:.3f}s",
            )
            return state
        committed = (
            step.kind is StepKind.RETRIABLE
            # a pivot whose outcome is unknown may have committed: undoing the steps before it
            # could leave its effect standing alone, so an operator decides
            or (step.kind is StepKind.PIVOT and error.retryable)
            or (
                state.current_step > 0
                and definition.steps[state.current_step - 1].kind is not StepKind.COMPENSATABLE
            )
        )
        if committed:
            self._park(state, SagaStatus.RUNNING, error)
        else:
            self._begin_compensation(definition, state, error, include_current=error.retryable)
        state = await self._save(state)
        self._emit_transition(definition, state)
        return state

    def _begin_compensation(
        self, definition: Saga, state: SagaState, failure: ErrorInfo, *, include_current: bool
    ) -> None:
        """Plan compensations: succeeded steps in reverse, and the failed step if its outcome is unknown."""
        done = [s.name for s in definition.steps[: state.current_step] if s.compensation is not None]
        current = definition.steps[state.current_step] if state.current_step < len(definition.steps) else None
        if include_current and current is not None and current.compensation is not None:
            done.append(current.name)
        state.failure = failure
        state.compensation_plan = list(reversed(done))
        state.compensation_position = 0
        if state.compensation_plan:
            state.status = SagaStatus.COMPENSATING
            self._open(state, state.compensation_plan[0], Phase.COMPENSATION)
        else:
            state.status = SagaStatus.COMPENSATED

    async def _compensate(self, definition: Saga, state: SagaState) -> SagaState:
        name = state.compensation_plan[state.compensation_position]
        step = definition.steps[definition.step_index(name)]
        state, entry = await self._ensure_open(state, name, Phase.COMPENSATION)
        await self._sleep_until_due(entry)
        ctx = self._context(state, step, entry.attempt, compensating=True)
        assert step.compensation is not None  # noqa: S101 - only steps with one are planned
        try:
            await self._attempt(ctx, step.compensation, step.timeout)
        except Exception as exc:  # noqa: BLE001 - every failure is recorded and classified
            return await self._compensation_failed(definition, state, entry, _error_info(exc, step.timeout))
        self._close(entry, AttemptStatus.SUCCEEDED)
        self._emit(
            EventKind.COMPENSATION_SUCCEEDED,
            state,
            step=name,
            attempt=entry.attempt,
            duration=entry.duration_seconds,
        )
        state.compensation_position += 1
        if state.compensation_position == len(state.compensation_plan):
            state.status = SagaStatus.COMPENSATED
        else:
            self._open(state, state.compensation_plan[state.compensation_position], Phase.COMPENSATION)
        state = await self._save(state)
        self._emit_transition(definition, state)
        return state

    async def _compensation_failed(
        self, definition: Saga, state: SagaState, entry: HistoryEntry, error: ErrorInfo
    ) -> SagaState:
        self._close(entry, AttemptStatus.FAILED, error)
        self._emit(
            EventKind.COMPENSATION_FAILED,
            state,
            step=entry.step,
            attempt=entry.attempt,
            error=error,
            duration=entry.duration_seconds,
        )
        policy = definition.compensation_retry
        if error.retryable and policy.allows_another(entry.attempt):
            delay = policy.delay(entry.attempt, self._rng)
            self._open(state, entry.step, Phase.COMPENSATION, attempt=entry.attempt + 1, delay=delay)
            state = await self._save(state)
            self._emit(
                EventKind.RETRY_SCHEDULED,
                state,
                step=entry.step,
                attempt=entry.attempt + 1,
                detail=f"in {delay:.3f}s",
            )
            return state
        self._park(state, SagaStatus.COMPENSATING, error)
        state = await self._save(state)
        self._emit_transition(definition, state)
        return state

    def _park(self, state: SagaState, parked_from: SagaStatus, error: ErrorInfo) -> None:
        state.status = SagaStatus.REQUIRES_ATTENTION
        state.parked_from = parked_from
        if state.failure is None:
            state.failure = error

    # ------------------------------------------------------------------ helpers

    def _definition(self, saga_type: str) -> Saga:
        try:
            return self._registry[saga_type]
        except KeyError:
            raise UnknownSagaTypeError(f"no saga definition named {saga_type!r}") from None

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _past_deadline(self, state: SagaState) -> bool:
        return state.deadline_at_ms is not None and self._now_ms() >= state.deadline_at_ms

    def _open(
        self, state: SagaState, step: str, phase: Phase, *, attempt: int = 1, delay: float = 0.0
    ) -> HistoryEntry:
        started = utcnow() + timedelta(seconds=delay) if delay else utcnow()
        entry = HistoryEntry(
            step=step, phase=phase, attempt=attempt, started_at=started, worker=self.worker_id
        )
        state.history.append(entry)
        return entry

    @staticmethod
    def _close(entry: HistoryEntry, status: AttemptStatus, error: ErrorInfo | None = None) -> None:
        entry.status = status
        entry.ended_at = max(utcnow(), entry.started_at)
        entry.error = error

    async def _ensure_open(self, state: SagaState, step: str, phase: Phase) -> tuple[SagaState, HistoryEntry]:
        """The open attempt of `step`, recording one first if there is none (write-ahead)."""
        entry = state.open_entry()
        if entry is not None and entry.step == step and entry.phase is phase:
            return state, entry
        self._open(state, step, phase, attempt=state.attempts_of(step, phase) + 1)
        state = await self._save(state)
        opened = state.open_entry()
        assert opened is not None  # noqa: S101 - just recorded
        return state, opened

    async def _attempt(self, ctx: StepContext, call: Action, timeout: float) -> JsonObject | None:
        with contextlib.ExitStack() as hooks:
            for hook in self._step_hooks:
                hooks.enter_context(hook(ctx))
            return await asyncio.wait_for(_in_context(ctx, call), timeout)

    @staticmethod
    async def _sleep_until_due(entry: HistoryEntry) -> None:
        delay = (entry.started_at - utcnow()).total_seconds()
        if delay > 0:
            await asyncio.sleep(delay)

    def _context(self, state: SagaState, step: SagaStep, attempt: int, *, compensating: bool) -> StepContext:
        suffix = ":compensate" if compensating else ""
        return StepContext(
            saga_id=state.saga_id,
            saga_type=state.saga_type,
            step=step.name,
            attempt=attempt,
            idempotency_key=f"{state.saga_id}:{step.name}{suffix}",
            input=MappingProxyType(copy.deepcopy(state.input)),
            outputs=MappingProxyType(self._earlier_outputs(state, step)),
            output=copy.deepcopy(state.outputs.get(step.name)) if compensating else None,
            compensating=compensating,
            failure=state.failure if compensating else None,
        )

    def _earlier_outputs(self, state: SagaState, step: SagaStep) -> dict[str, Any]:
        """Copies of the outputs of the steps before `step`: a step cannot change them."""
        names = [s.name for s in self._definition(state.saga_type).steps]
        earlier = names[: names.index(step.name)]
        return {name: copy.deepcopy(state.outputs[name]) for name in earlier if name in state.outputs}

    async def _save(self, state: SagaState) -> SagaState:
        state.updated_at = utcnow()
        state.lease_expires_at_ms = self._now_ms() + self._lease_ms if state.status.is_active else 0
        try:
            return await self.store.save(state)
        except ConcurrencyError as exc:
            raise LeaseLostError(f"saga {state.saga_id}: lease lost to another worker") from exc

    def _emit_transition(self, definition: Saga, state: SagaState) -> None:
        kinds = {
            SagaStatus.COMPLETED: EventKind.SAGA_COMPLETED,
            SagaStatus.COMPENSATED: EventKind.SAGA_COMPENSATED,
            SagaStatus.REQUIRES_ATTENTION: EventKind.SAGA_PARKED,
        }
        if state.status in kinds:
            duration = (state.updated_at - state.created_at).total_seconds()
            self._emit(kinds[state.status], state, duration=duration, error=state.failure)
            return
        entry = state.open_entry()
        if entry is not None and entry.attempt == 1:
            kind = EventKind.STEP_STARTED if entry.phase is Phase.ACTION else EventKind.COMPENSATION_STARTED
            self._emit(kind, state, step=entry.step, attempt=1)

    def _emit(
        self,
        kind: EventKind,
        state: SagaState,
        *,
        step: str | None = None,
        attempt: int | None = None,
        duration: float | None = None,
        error: ErrorInfo | None = None,
        detail: str | None = None,
    ) -> None:
        event = SagaEvent(
            kind=kind,
            saga_id=state.saga_id,
            saga_type=state.saga_type,
            correlation_id=state.correlation_id,
            step=step,
            attempt=attempt,
            duration_seconds=duration,
            error=error,
            detail=detail,
        )
        for observer in self._observers:
            try:
                observer.notify(event)
            except Exception:
                logger.exception("saga observer failed", extra={"saga_id": state.saga_id})
