"""Errors of the saga engine.

The tree::

    SagaError
    ├── SagaDefinitionError      a saga or step definition is invalid (raised when defined)
    ├── InvalidSagaInputError    a saga's input does not validate against its input model
    ├── SagaNotFoundError        no saga with that id
    ├── SagaConflictError        the operation does not apply to the saga's current state
    ├── UnknownSagaTypeError     no definition registered under that name
    │   └── UnknownDefinitionError   the saga's definition version is not registered here
    └── ConcurrencyError         the stored saga changed under us (version mismatch)
        └── LeaseLostError       another worker owns the saga now; stop touching it

    StepError                    raise from an action to say how the engine should treat a failure
    ├── NonRetryableError        a business failure: stop and compensate
    └── RetryableError           a transient failure: retry per the step's policy

Any other exception raised by an action counts as retryable, unless it has a ``retryable``
attribute set to ``False`` (so a participant's own business errors can opt out without importing
the engine). Its ``code`` attribute, if present, is recorded with the failure.
"""

from __future__ import annotations

from typing import Final


class ErrorCode:
    """The codes the engine itself records in `ErrorInfo.code` (stable: they are persisted)."""

    TIMEOUT: Final = "saga.timeout"
    """An attempt took longer than its step's timeout (retryable)."""
    INTERRUPTED: Final = "saga.interrupted"
    """The worker running an attempt stopped before recording its outcome."""
    DEADLINE_EXCEEDED: Final = "saga.deadline_exceeded"
    """The saga's deadline passed before it reached its pivot."""
    CANCELLED: Final = "saga.cancelled"
    """An operator cancelled the saga."""
    UNKNOWN_DEFINITION: Final = "saga.unknown_definition"
    """No worker ran the saga's definition version for too long; it was parked for an operator."""
    SHUTDOWN: Final = "saga.shutdown"
    """The worker shut down while the attempt ran and cancelled it after its grace period."""


class SagaError(Exception):
    """Base class of the engine's own errors."""


class SagaDefinitionError(SagaError, ValueError):
    """A saga or step definition is invalid."""


class InvalidSagaInputError(SagaError, ValueError):
    """A saga's input does not validate against the saga's input model (raised by `start`)."""


class SagaNotFoundError(SagaError, LookupError):
    """No saga with the given id exists."""


class SagaConflictError(SagaError):
    """The requested operation does not apply to the saga in its current state."""


class UnknownSagaTypeError(SagaError, LookupError):
    """No saga definition is registered under the given name."""


class UnknownDefinitionError(UnknownSagaTypeError):
    """The saga runs on a definition version (or step fingerprint) not registered in this engine."""


class ConcurrencyError(SagaError):
    """The saga was changed by someone else since it was read (optimistic concurrency)."""


class LeaseLostError(ConcurrencyError):
    """This worker no longer holds the saga's lease; it must stop working on the saga."""


class PrecedingWriteRefusedError(SagaError):
    """A write `start` was to make before the saga's insert was refused (it hit a unique index):
    the saga was not stored or started. Its cause is the store's own error."""


class StoreUnavailableError(SagaError):
    """The saga store cannot be reached right now (its database is down or unreachable).

    Nothing is lost: a saga whose write failed stays as it was stored, and is resumed once its
    lease expires and the store answers again.
    """


class StepError(Exception):
    """A failure raised by a step's action or compensation.

    Args:
        message: Human-readable description.
        code: A stable, machine-readable code recorded in the saga's history.
    """

    retryable: bool = True

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class NonRetryableError(StepError):
    """A business failure: retrying cannot help, so the saga compensates."""

    retryable = False


class RetryableError(StepError):
    """A transient failure: the engine retries the step per its retry policy."""

    retryable = True


def is_retryable(exc: BaseException) -> bool:
    """Whether the engine should retry after `exc` (see the module docstring)."""
    return bool(getattr(exc, "retryable", True))


def error_code(exc: BaseException) -> str | None:
    """The stable code of `exc`, if it carries one."""
    code = getattr(exc, "code", None)
    return code if isinstance(code, str) else None
