"""The step being run, for code deep inside an action (an HTTP client adding a saga-id header)."""

from __future__ import annotations

from contextvars import ContextVar

from ecommerce_saga.saga.definition import StepContext

_current: ContextVar[StepContext | None] = ContextVar("ecommerce_saga_current_step", default=None)


def current_step() -> StepContext | None:
    """The context of the action or compensation running in this task, or None outside one."""
    return _current.get()
