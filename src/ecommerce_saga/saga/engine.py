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
from typing import Any, TypeVar

from pydantic import BaseModel

from ecommerce_saga.saga import operator, transitions
from ecommerce_saga.saga.definition import Registry, Saga
from ecommerce_saga.saga.errors import (
    LeaseLostError,
    SagaConflictError,
    SagaDefinitionError,
    SagaNotFoundError,
    StoreUnavailableError,
)
from ecommerce_saga.saga.leased_store import LeasedStore
from ecommerce_saga.saga.observers import EventKind, LoggingObserver, Notifier, SagaObserver
from ecommerce_saga.saga.runner import SagaRunner, StepHook
from ecommerce_saga.saga.state import Phase, SagaState
from ecommerce_saga.saga.store import SagaExpectation, SagaQuery, SagaStore

logger = logging.getLogger(__name__)

T = TypeVar("T")


class SagaEngine:
    """Runs registered sagas against a `SagaStore`.

    Args:
        store: Where saga state lives.
        definitions: The sagas this engine can run (and recover); one saga may come in several
            versions: new sagas start on the newest, every saga resumes on its own.
        worker_id: This worker's identity, recorded as lease owner; unique per process.
        lease_seconds: How long a claim lasts without renewal.
        recovery_interval: Seconds between recovery passes of the background loop.
        observers: Receive every lifecycle event; defaults to a `LoggingObserver`.
        clock: Seconds since the epoch (injectable for tests).
        unknown_definition_park_after: Seconds a saga whose definition version this engine lacks
            may wait, once this engine has seen it unclaimed, for a worker that has it before
            this engine parks it with code ``saga.unknown_definition``; None never parks it.
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
        definitions: Sequence[Saga[Any]],
        *,
        worker_id: str | None = None,
        lease_seconds: float = 15.0,
        recovery_interval: float = 5.0,
        observers: Sequence[SagaObserver] | None = None,
        clock: Callable[[], float] = time.time,
        unknown_definition_park_after: float | None = 600.0,
        is_outage: Callable[[BaseException], bool] | None = None,
    ) -> None:
        self.store = store
        self.worker_id = worker_id or f"worker-{uuid.uuid4().hex[:12]}"
        self._worker = LeasedStore(
            store,
            Registry(definitions),
            worker_id=self.worker_id,
            lease_ms=int(lease_seconds * 1000),
            clock=clock,
        )
        self._recovery_interval = recovery_interval
        self._notifier = Notifier(observers if observers is not None else [LoggingObserver()])
        self._runner = SagaRunner(self._worker, self._notifier, random.Random(), is_outage=is_outage)
        self._tasks: dict[str, asyncio.Task[SagaState | None]] = {}
        self._recovery_task: asyncio.Task[None] | None = None
        self._park_after_ms = (
            None if unknown_definition_park_after is None else int(unknown_definition_park_after * 1000)
        )
        self._unrunnable_since: dict[str, int] = {}
        self._stopping = False

    # ------------------------------------------------------------------ public API

    @property
    def definitions(self) -> Mapping[str, Saga[Any]]:
        """The newest registered version of each saga, by name."""
        return self._worker.registry.newest

    def definition_for(self, state: SagaState) -> Saga[Any] | None:
        """The registered definition `state` runs on (its own version), or None."""
        return self._worker.registry.find(state)

    @property
    def awaiting_definition(self) -> int:
        """Sagas seen waiting for a worker with their definition version, at the last recovery pass."""
        return len(self._unrunnable_since)

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
        saga_input: BaseModel | Mapping[str, Any],
        *,
        saga_id: str | None = None,
        correlation_id: str | None = None,
        preceded_by: Sequence[object] = (),
    ) -> SagaState:
        """Start a saga and return its initial state; it then runs in the background.

        Idempotent: if a saga with `saga_id` exists, it is returned unchanged and not run again.

        The input is validated against the newest definition's input model, if it has one, and
        stored as JSON.

        `preceded_by` are writes of the caller's that the store makes first, in order, in the same
        command as the saga's insert where it can (`SagaStore.create`; `MongoSagaStore` takes its
        `stores.ordered` writes): the record the saga acts for, stored before its saga and at the
        cost of one round trip for both.

        Raises:
            UnknownSagaTypeError: If no definition is registered as `saga_type`.
            InvalidSagaInputError: If the input does not validate.
            PrecedingWriteRefusedError: A write of `preceded_by` hit a unique index; the saga was
                not stored or started.
        """
        definition = self._worker.registry.newest_of(saga_type)
        now = self._worker.now_ms()
        state = SagaState(
            saga_id=saga_id or uuid.uuid4().hex,
            saga_type=saga_type,
            definition_version=definition.version,
            definition_fingerprint=definition.fingerprint,
            input=definition.stored_input(saga_input),
            correlation_id=correlation_id,
            lease_owner=self.worker_id,
            lease_expires_at_ms=now + self._worker.lease_ms,
            fencing_token=1,
            deadline_at_ms=now + int(definition.deadline * 1000) if definition.deadline else None,
        )
        transitions.open_attempt(state, definition.steps[0].name, Phase.ACTION, worker=self.worker_id)
        if self._stopping:  # shutting down: leave it to another worker at once
            state.lease_expires_at_ms = 0
        writes = None if self._stopping else self._runner.writes_of(definition, state)
        if writes is not None:  # the first step rides on the saga's insert (`SagaStep.riding`)
            created, made = await self.store.create_and_write(state, writes.writes, preceded_by)
            if created and made:
                self._runner.rode(state, writes)
        elif preceded_by:
            created = await self.store.create(state, preceded_by)
        else:
            created = await self.store.create(state)
        if not created:
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

    def peek(self, saga_id: str, read: Callable[[SagaState], T]) -> T | None:
        """`read` applied to the saga as this engine holds it while driving it; None if it drives it not.

        No read from the store and no copy: `read` gets the state this engine last wrote (or,
        between a step's end and the write that records it, the transition about to be written)
        and must not change or keep it. A saga driven elsewhere, or finished here, is read with `get`.
        """
        state = self._worker.driven.get(saga_id)
        return None if state is None else read(state)

    async def find(self, query: SagaQuery) -> tuple[list[SagaState], int]:
        """Sagas matching `query` (by status, type, correlation id, age), newest first."""
        return await self.store.find(query)

    @property
    def stopping(self) -> bool:
        """True once `stop` has begun: this engine claims and starts nothing any more."""
        return self._stopping

    def is_running_here(self, saga_id: str) -> bool:
        """True while this engine is driving the saga."""
        return saga_id in self._tasks

    # ------------------------------------------------------------------ recovery

    RECOVERY_BATCH = 100
    """Sagas claimed per recovery pass; a full pass is followed at once by another."""

    async def recover_once(self, limit: int = RECOVERY_BATCH) -> int:
        """Claim active sagas whose lease expired and resume them; return how many were claimed.

        Sagas whose definition version is not registered here are left to other workers; they
        are reported (`EventKind.DEFINITION_MISSING`) and, after `unknown_definition_park_after`
        seconds, parked (see `SagaEngine`).
        """
        if self._stopping:
            return 0
        claimed = await self._claim_expired(limit)
        if claimed < limit:
            await self._watch_unrunnable()
        return claimed

    async def _claim_expired(self, limit: int) -> int:
        claimed = 0
        while claimed < limit:
            state = await self._worker.claim_expired()
            if state is None:
                break
            stale = self._tasks.pop(state.saga_id, None)
            self._worker.driven.pop(state.saga_id, None)
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

    async def check_definitions(self) -> None:
        """Refuse definitions whose steps differ from what unfinished sagas of their version recorded.

        Raises:
            SagaDefinitionError: If a registered version's fingerprint differs from the one stored
                sagas of that version recorded: its steps changed without a version bump.
        """
        for definition in self._worker.registry.all():
            recorded = await self.store.fingerprints(definition.name, definition.version)
            changed = sorted(recorded - {definition.fingerprint})
            if changed:
                msg = (
                    f"saga {definition.name!r} version {definition.version} has steps "
                    f"{definition.fingerprint}, but unfinished sagas of that version recorded steps "
                    f"{', '.join(changed)}: its steps changed, so bump its version (to "
                    f"{definition.version + 1}) and keep version {definition.version} registered "
                    "until its sagas finish (docs/saga-engine.md, 'Changing a saga')"
                )
                raise SagaDefinitionError(msg)

    async def _watch_unrunnable(self) -> None:
        """Report sagas left for workers with their definition; park them once they waited too long."""
        now = self._worker.now_ms()
        found = await self.store.find_unrunnable(
            now, definitions=self._worker.registry.refs, limit=self.RECOVERY_BATCH
        )
        waiting: dict[str, int] = {}
        for state in found:
            waiting[state.saga_id] = self._unrunnable_since.get(state.saga_id, now)
            if state.saga_id not in self._unrunnable_since:  # logged by the default observer
                self._notifier.emit(EventKind.DEFINITION_MISSING, state, detail=f"v{state.runs_on_version}")
        self._unrunnable_since = waiting
        if self._park_after_ms is None:
            return
        for state in found:
            if now - waiting[state.saga_id] >= self._park_after_ms:
                await self._park_unrunnable(state, now)

    async def _park_unrunnable(self, seen: SagaState, now_ms: int) -> None:
        expect = SagaExpectation(seen.status, seen.current_step, lease_expired_by=now_ms)
        state = await self._worker.take_over(seen.saga_id, expect)
        self._unrunnable_since.pop(seen.saga_id, None)
        if state is None:  # claimed meanwhile by a worker that has its definition
            return
        transitions.park_unrunnable(state)
        state = await self._worker.save(state)
        self._notifier.transition(state)

    async def start_background(self) -> None:
        """Check the definitions against the store, recover once now, then keep recovering every
        `recovery_interval` seconds.

        Raises:
            SagaDefinitionError: See `check_definitions`.
        """
        await self.check_definitions()
        await self.recover_once()  # the first batch before serving; the loop takes the rest at once
        self._recovery_task = asyncio.create_task(self._recovery_loop(), name="saga-recovery")

    async def stop(self, grace: float = 0.0) -> None:
        """Stop recovering and hand the sagas this engine drives over to other workers.

        No saga is claimed or started here any more (a saga `start`ed meanwhile is stored with
        its lease free, for another worker). Attempts in flight may finish for up to `grace`
        seconds; each run then saves its result and gives its lease up, so another worker
        resumes the saga at its next recovery pass instead of after the lease. Runs still going
        after `grace` are cancelled (their attempt counts as interrupted) and give their leases up.
        """
        self._stopping = True
        self._runner.draining.set()
        if self._recovery_task is not None:
            self._recovery_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recovery_task
            self._recovery_task = None
        tasks = list(self._tasks.values())
        if tasks and grace > 0:
            await asyncio.wait(tasks, timeout=grace)
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
        self._worker.driven.pop(saga_id, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        state = await operator.cancel(self._worker, self._notifier, seen, actor=actor, reason=reason)
        if state.status.is_active:
            self._spawn(state)
        return state

    # ------------------------------------------------------------------ driving a saga

    def _spawn(self, state: SagaState) -> None:
        if self._stopping:
            return
        task = asyncio.create_task(self._runner.run(state), name=f"saga-{state.saga_id}")
        self._tasks[state.saga_id] = task
        self._worker.driven[state.saga_id] = state
        task.add_done_callback(lambda done: self._forget(state.saga_id, done))

    def _forget(self, saga_id: str, task: asyncio.Task[SagaState | None]) -> None:
        if self._tasks.get(saga_id) is task:
            del self._tasks[saga_id]
            self._worker.driven.pop(saga_id, None)
