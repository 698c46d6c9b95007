"""Saga operations: a REST API to list, inspect, retry and cancel sagas, and a web console over it.

Install both into the app with `install_operations(app, container)`:

- `GET /api/sagas`, `GET /api/sagas/{id}`, `POST /api/sagas/{id}/retry`, `POST /api/sagas/{id}/cancel`
  (operators only; see `ecommerce_saga.operations.router`);
- the console page at `/console`, with its assets under `/console/static`.
"""

from __future__ import annotations

from typing import Protocol

from fastapi import FastAPI

from ecommerce_saga.operations.console import install_console
from ecommerce_saga.operations.models import SagaNotCancellableError, SagaNotParkedError, UnknownSagaError
from ecommerce_saga.operations.router import build_router
from ecommerce_saga.saga import SagaEngine
from ecommerce_saga.web.auth import Authenticator

__all__ = [
    "OperationsContainer",
    "SagaNotCancellableError",
    "SagaNotParkedError",
    "UnknownSagaError",
    "build_router",
    "install_console",
    "install_operations",
]


class OperationsContainer(Protocol):
    """What operations need of the app's composition root (`bootstrap.Container` has it).

    A protocol rather than the container itself, so that this package never imports the composition
    root and, through it, the modules' internals.
    """

    @property
    def engine(self) -> SagaEngine | None:
        """The saga engine whose sagas are operated on; None in a process that runs no sagas."""
        ...

    @property
    def auth(self) -> Authenticator:
        """Checks callers; the operations API admits operators only."""
        ...


def install_operations(app: FastAPI, container: OperationsContainer) -> None:
    """Add the saga operations API and the console to `app`, if this process runs the saga engine.

    In a split deployment only the process hosting the order module runs the engine; the others
    get neither the API nor the console (the console also calls the order API, hosted alongside).

    Args:
        app: The application; its problem+json handlers render the API's errors.
        container: Supplies the saga engine and the authenticator.
    """
    if container.engine is None:
        return
    app.include_router(build_router(container.engine, container.auth))
    install_console(app)
