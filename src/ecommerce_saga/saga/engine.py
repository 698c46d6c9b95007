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

Layout: `SagaEngine` (here) starts, finds and recovers sagas and owns the tasks that drive them;
`runner` drives one saga; `transitions` holds the pure rules that change a saga's state; `worker`
holds this worker's lease and its conditional writes; `operator` resumes and cancels.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ecommerce_saga.saga import operator, transitions
from ecommerce_saga.saga.definition import Saga, build_registry
from ecommerce_saga.saga.errors import (
    LeaseLostError,
    SagaConflictError,
    SagaNotFoundError,
    StoreUnavailableError,
)
from ecommerce_saga.saga.observers import EventKind, LoggingObserver, Notifier, SagaObserver
from ecommerce_saga.saga.runner import SagaRunner, StepHook
from ecommerce_saga.saga.state import Phase, SagaState
from ecommerce_saga.saga.store import SagaQuery, SagaStore
from ecommerce_saga.saga.transitions import INTERRUPTED
from ecommerce_saga.saga.worker import Worker

# StepHook and INTERRUPTED were defined here before the engine was split; they stay importable.
__all__ = ["INTERRUPTED", "SagaEngine", "StepHook"]

logger = logging.getLogger(__name__)


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
        is_outage: Says which exceptions raised by a step are outages of a store the step uses
            (a database driver's timeout, say), besides `StoreUnavailableError`. Such a failure
            is not the step's: the saga run pauses with the attempt still open, as when the saga
            store itself is unreachable, and resumes once its lease expires and the store answers
            (the attempt then counts as interrupted). It never uses up the step's retries, so an
            outage alone never makes a saga compensate.
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
        is_outage: Callable[[BaseException], bool] | None = None,
    ) -> None:
        self.store = store
        self.worker_id = worker_id or f"worker-{uuid.uuid4().hex[:12]}"
        self._worker = Worker(
            store,
            build_registry(definitions),
            worker_id=self.worker_id,
            lease_ms=int(lease_seconds * 1000),
            clock=clock,
        )
        self._recovery_interval = recovery_interval
        self._notifier = Notifier(observers if observers is not None else [LoggingObserver()])
        self._runner = SagaRunner(self._worker, self._notifier, random.Random(), is_outage=is_outage)
        self._tasks: dict[str, asyncio.Task[SagaState | None]] = {}
        self._recovery_task: asyncio.Task[SagaState | None] | None = None

    # ------------------------------------------------------------------ public API

    @property
    def definitions(self) -> Mapping[str, Saga]:
        """The registered saga definitions by name."""
        return self._worker.registry

    def add_observer(self, observer: SagaObserver) -> None:
        """Register one more observer."""
        self._notifier.add(observer)

    def add_step_hook(self, hook: StepHook) -> None:
        """Run every attempt of an action or compensation inside ``with hook(ctx):``.

        The attempt's outcome, an exception or a timeout included, passes through the hook (so a
        tracing span can record it); a hook must not swallow it, and must be fast and not raise.
        """
        self._runner.add_step_hook(hook)

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
        definition = self._worker.definition(saga_type)
        now = self._worker.now_ms()
        state = SagaState(
            saga_id=saga_id or uuid.uuid4().hex,
            saga_type=saga_type,
            input=dict(saga_input),
            correlation_id=correlation_id,
            lease_owner=self.worker_id,
            lease_expires_at_ms=now + self._worker.lease_ms,
            fencing_token=1,
            deadline_at_ms=now + int(definition.deadline * 1000) if definition.deadline else None,
        )
        transitions.open_attempt(state, definition.steps[0].name, Phase.ACTION, worker=self.worker_id)
        if not await self.store.create(state):
            return await self._existing(state.saga_id, saga_type)
        self._notifier.emit(EventKind.SAGA_STARTED, state)
        self._notifier.emit(EventKind.STEP_STARTED, state, step=definition.steps[0].name, attempt=1)
        self._spawn(state)
        return state

    async def _existing(self, saga_id: str, saga_type: str) -> SagaState:
        """The saga a repeated `start` found, if it is of the type that was asked for."""
        existing = await self.store.get(saga_id)
        if existing is None:  # pragma: no cover - deleted between the two calls
            raise SagaNotFoundError(saga_id)
        if existing.saga_type != saga_type:
            msg = f"saga {saga_id} exists as a {existing.saga_type!r} saga, not {saga_type!r}"
            raise SagaConflictError(msg)
        return existing

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
        return await self._worker.get(saga_id)

    async def find(self, query: SagaQuery) -> tuple[list[SagaState], int]:
        """Sagas matching `query` (by status, type, correlation id, age), newest first."""
        return await self.store.find(query)

    def is_running_here(self, saga_id: str) -> bool:
        """True while this engine is driving the saga."""
        return saga_id in self._tasks

    # ------------------------------------------------------------------ recovery

    RECOVERY_BATCH = 100
    """Sagas claimed per recovery pass; a full pass is followed at once by another."""

    async def recover_once(self, limit: int = RECOVERY_BATCH) -> int:
        """Claim active sagas whose lease expired and resume them; return how many were claimed."""
        claimed = 0
        while claimed < limit:
            state = await self._worker.claim_expired()
            if state is None:
                break
            stale = self._tasks.pop(state.saga_id, None)
            if stale is not None:
                stale.cancel()
            claimed += 1
            try:
                state = await self._reopen_interrupted(state)
            except LeaseLostError:  # another worker claimed it in between: it is theirs
                self._notifier.emit(EventKind.LEASE_LOST, state)
                continue
            self._notifier.emit(EventKind.SAGA_RECOVERED, state)
            self._spawn(state)
        return claimed

    async def start_background(self) -> None:
        """Recover once now, then keep recovering every `recovery_interval` seconds."""
        await self.recover_once()  # the first batch before serving; the loop takes the rest at once
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

    OUTAGE_BACKOFF = 4
    """While the store is unavailable, recovery passes slow down to at most this many intervals apart."""

    async def _recovery_loop(self) -> None:
        backlog = True  # start_background's pass may have left more behind
        outages = 0  # passes in a row that found the store unavailable
        while True:
            if not backlog:
                await asyncio.sleep(self._recovery_interval * min(2**outages, self.OUTAGE_BACKOFF))
            try:
                backlog = await self.recover_once() >= self.RECOVERY_BATCH
                outages = 0
            except StoreUnavailableError as exc:
                backlog = False
                outages += 1
                logger.warning("saga recovery pass skipped: %s", exc)
            except Exception:
                backlog = False
                logger.exception("saga recovery pass failed; retrying at the next interval")

    async def _reopen_interrupted(self, state: SagaState) -> SagaState:
        """Close the attempt that was in flight when its worker stopped, and open a new one."""
        if not transitions.reopen_interrupted(state, worker=self.worker_id):
            return state
        return await self._worker.save(state)

    # ------------------------------------------------------------------ operator functions

    async def resume(self, saga_id: str, *, actor: str, reason: str) -> SagaState:
        """Resume a parked (``REQUIRES_ATTENTION``) saga where it stopped, with a fresh retry budget.

        Raises:
            SagaNotFoundError: If there is no such saga.
            SagaConflictError: If the saga is not parked.
        """
        state = await operator.resume(self._worker, self._notifier, saga_id, actor=actor, reason=reason)
        self._spawn(state)
        return state

    async def cancel(self, saga_id: str, *, actor: str, reason: str) -> SagaState:
        """Stop a running saga and compensate what it did, in reverse order.

        Raises:
            SagaNotFoundError: If there is no such saga.
            SagaConflictError: If the saga is not running, or has passed its point of no return.
        """
        seen = await operator.cancellable(self._worker, saga_id)
        task = self._tasks.pop(saga_id, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        state = await operator.cancel(self._worker, self._notifier, seen, actor=actor, reason=reason)
        if state.status.is_active:
            self._spawn(state)
        return state

    # ------------------------------------------------------------------ driving a saga

    def _spawn(self, state: SagaState) -> None:
        task = asyncio.create_task(self._runner.run(state), name=f"saga-{state.saga_id}")
        self._tasks[state.saga_id] = task
        task.add_done_callback(lambda done: self._forget(state.saga_id, done))

    def _forget(self, saga_id: str, task: asyncio.Task[SagaState | None]) -> None:
        if self._tasks.get(saga_id) is task:
            del self._tasks[saga_id]
