"""The FastAPI application: lifespan (database, engine recovery, demo data), routes, error handling."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline

from ecommerce_saga import __version__
from ecommerce_saga.audit import build_router as audit_router
from ecommerce_saga.bootstrap import Container, build_container
from ecommerce_saga.logs import configure_logging
from ecommerce_saga.modules.inventory.router import build_router as inventory_router
from ecommerce_saga.modules.notification.router import build_router as notification_router
from ecommerce_saga.modules.order.router import build_router as order_router
from ecommerce_saga.modules.payment.router import build_router as payment_router
from ecommerce_saga.modules.shipping.router import build_router as shipping_router
from ecommerce_saga.observability import configure_tracing, exclude_from_tracing, install_observability
from ecommerce_saga.operations import install_operations
from ecommerce_saga.settings import Settings
from ecommerce_saga.web.problems import install_problem_handlers

logger = logging.getLogger(__name__)

DESCRIPTION = """
E-commerce order processing on a durable saga engine. Placing an order runs the place-order saga:
reserve items → charge payment → schedule delivery → notify; on failure the completed steps are
undone in reverse. Errors are RFC 9457 `application/problem+json` documents with a stable `code`.

Saga endpoints (tag `saga`) need the service token, catalog administration the admin token:
`Authorization: Bearer <token>`.
"""


def _include_routers(app: FastAPI, container: Container) -> None:
    """Serve the routes of the modules this process hosts, and no others."""
    tokens = container.tokens
    if container.orders is not None:
        app.include_router(
            order_router(container.orders, tokens, wait_seconds=container.settings.order_wait_seconds)
        )
    if container.hosts("inventory") and container.inventory is not None:
        app.include_router(inventory_router(container.inventory, tokens))
    if container.hosts("payment") and container.payment is not None:
        app.include_router(payment_router(container.payment, tokens))
    if container.hosts("shipping") and container.shipping is not None:
        app.include_router(shipping_router(container.shipping, tokens))
    if container.hosts("notification") and container.notifications is not None:
        app.include_router(notification_router(container.notifications, tokens))


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the database opens and saga recovery starts in its lifespan."""
    configure_tracing()  # before build_container: PyMongo attaches its listeners to clients made after it
    container = build_container(settings or Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await container.start()
        app.state.ready = True
        settings = container.settings
        base = f"http://{settings.host}:{settings.port}"
        logger.info(
            "started: API docs at %s/docs, saga console at %s/console",
            base,
            base,
            extra={
                "modules": ",".join(settings.modules),
                "embedded_database": settings.uses_embedded_database,
            },
        )
        try:
            yield
        finally:
            app.state.ready = False
            await container.close()

    app = FastAPIOffline(
        title="ecommerce-saga",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        telemetry={"exclude": exclude_from_tracing},  # no traces for /metrics, /healthz, /readyz
    )
    app.state.container = container
    app.state.ready = False
    install_problem_handlers(app)
    _include_routers(app, container)
    install_operations(app, container)
    if container.engine is not None:
        app.include_router(audit_router(container.database.db, container.tokens))
    install_observability(app, container)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"description": "Not ready"}})
    async def readyz() -> JSONResponse:
        """Readiness: the app has started and its database answers."""
        if not app.state.ready or not await container.database.ping():
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ready"})

    return app


def app_from_environment() -> FastAPI:
    """The app factory a uvicorn worker process calls: settings and logging from `SHOP_*`."""
    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    return create_app(settings)
