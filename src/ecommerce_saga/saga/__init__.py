"""A durable, in-process saga engine.

Define a saga as an ordered list of steps, each with an action and an optional compensation;
the engine runs it step by step, persisting every transition before acting on it, retries
transient failures with backoff, compensates in reverse order on failure, and resumes sagas
left unfinished by a crash. It knows nothing about any particular domain.

Example (docs/saga-engine.md has a tutorial and the whole API)::

    import asyncio
    from pydantic import BaseModel
    from ecommerce_saga.saga import Saga, SagaEngine, Step, StepContext
    from ecommerce_saga.saga.stores.memory import InMemorySagaStore

    class Checkout(BaseModel):           # the saga's input
        amount: int

    class Reserved(BaseModel):           # the steps' outputs
        reservation_id: str

    class Charged(BaseModel):
        payment_id: str
        amount: int

    RESERVE = Step("reserve", Reserved)  # persisted names, with their output models
    CHARGE = Step("charge", Charged)

    async def reserve(ctx: StepContext[Checkout]) -> Reserved:
        return Reserved(reservation_id=f"r-{ctx.idempotency_key}")

    async def release(ctx: StepContext[Checkout], reserved: Reserved | None) -> None:
        print("releasing", reserved)

    async def charge(ctx: StepContext[Checkout]) -> Charged:
        return Charged(payment_id="p-1", amount=ctx.input.amount)

    saga = Saga("checkout", [RESERVE.does(reserve).undoes(release), CHARGE.does(charge)], input=Checkout)

    async def main() -> None:
        engine = SagaEngine(InMemorySagaStore(), [saga])
        state = await engine.start("checkout", Checkout(amount=1200), saga_id="order-1")
        state = await engine.wait(state.saga_id, timeout=5)
        print(state.status, state.outputs)

    asyncio.run(main())
"""

from ecommerce_saga.saga.context import current_step
from ecommerce_saga.saga.definition import Saga
from ecommerce_saga.saga.engine import SagaEngine
from ecommerce_saga.saga.errors import (
    ConcurrencyError,
    ErrorCode,
    InvalidSagaInputError,
    LeaseLostError,
    NonRetryableError,
    PrecedingWriteRefusedError,
    RetryableError,
    SagaConflictError,
    SagaDefinitionError,
    SagaError,
    SagaNotFoundError,
    StepError,
    StoreUnavailableError,
    UnknownDefinitionError,
    UnknownSagaTypeError,
)
from ecommerce_saga.saga.observers import EventKind, LoggingObserver, SagaEvent, SagaObserver
from ecommerce_saga.saga.retry import NO_RETRY, RetryPolicy
from ecommerce_saga.saga.runner import StepHook
from ecommerce_saga.saga.state import (
    AttemptStatus,
    DefinitionRef,
    ErrorInfo,
    HistoryEntry,
    Phase,
    SagaState,
    SagaStatus,
)
from ecommerce_saga.saga.steps import (
    ON_COMPENSATED,
    Action,
    Compensation,
    JsonObject,
    SagaHook,
    SagaStep,
    Step,
    StepContext,
    StepKind,
    StepWrites,
    TypedCompensation,
    WritesOf,
)
from ecommerce_saga.saga.store import SagaExpectation, SagaQuery, SagaStore

__all__ = [
    "NO_RETRY",
    "ON_COMPENSATED",
    "Action",
    "AttemptStatus",
    "Compensation",
    "ConcurrencyError",
    "DefinitionRef",
    "ErrorCode",
    "ErrorInfo",
    "EventKind",
    "HistoryEntry",
    "InvalidSagaInputError",
    "JsonObject",
    "LeaseLostError",
    "LoggingObserver",
    "NonRetryableError",
    "Phase",
    "PrecedingWriteRefusedError",
    "RetryPolicy",
    "RetryableError",
    "Saga",
    "SagaConflictError",
    "SagaDefinitionError",
    "SagaEngine",
    "SagaError",
    "SagaEvent",
    "SagaExpectation",
    "SagaHook",
    "SagaNotFoundError",
    "SagaObserver",
    "SagaQuery",
    "SagaState",
    "SagaStatus",
    "SagaStep",
    "SagaStore",
    "Step",
    "StepContext",
    "StepError",
    "StepHook",
    "StepKind",
    "StepWrites",
    "StoreUnavailableError",
    "TypedCompensation",
    "UnknownDefinitionError",
    "UnknownSagaTypeError",
    "WritesOf",
    "current_step",
]
