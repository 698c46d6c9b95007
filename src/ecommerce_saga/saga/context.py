"""The step being run, for code deep inside an action (an HTTP client adding a saga-id header)."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from ecommerce_saga.saga.steps import StepContext

_current: ContextVar[StepContext[Any] | None] = ContextVar("ecommerce_saga_current_step", default=None)


def current_step() -> StepContext[Any] | None:
    """The context of the action or compensation running in this task, or None outside one."""
    return _current.get()
