"""The FastAPI application: lifespan (database, engine recovery, demo data), routes, error handling."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline

from ecommerce_saga import __version__
from ecommerce_saga.bootstrap import Container, build_container
from ecommerce_saga.identity import DevelopmentIssuer
from ecommerce_saga.modules.inventory.router import build_router as inventory_router
from ecommerce_saga.modules.notification.router import build_router as notification_router
from ecommerce_saga.modules.order.router import build_router as order_router
from ecommerce_saga.modules.payment.router import build_router as payment_router
from ecommerce_saga.modules.shipping.router import build_router as shipping_router
from ecommerce_saga.observability import (
    ManagementServer,
    configure_tracing,
    exclude_from_tracing,
    install_observability,
)
from ecommerce_saga.observability.logs import configure_logging
from ecommerce_saga.operations import install_operations
from ecommerce_saga.operations.audit import build_router as audit_router
from ecommerce_saga.settings import Settings
from ecommerce_saga.web.problems import install_problem_handlers

logger = logging.getLogger(__name__)

DESCRIPTION = """
E-commerce order processing on a durable saga engine. Placing an order runs the place-order saga:
reserve items → charge payment → schedule delivery → notify; on failure the completed steps are
undone in reverse. Errors are RFC 9457 `application/problem+json` documents with a stable `code`.

Every call but the catalog's reads needs `Authorization: Bearer <token>`:

- **customers**: an access token (JWT) from the shop's identity provider; they place orders as
  themselves and see and cancel only their own orders, payments, shipments and notifications;
- **operators**: a token carrying the admin role, or the admin token: everything, for any customer;
  catalog administration; the saga API (`/api/sagas`), the console and the audit;
- **the service** (other modules, split mode): the service token, for the saga endpoints (tag `saga`).

Another customer's order, payment, shipment or notification answers 404. Without an identity
provider configured, `ecommerce-saga token --customer cust-ada` prints a development token.
"""


def _include_routers(app: FastAPI, container: Container) -> None:
    """Serve the routes of the modules this process hosts, and no others."""
    tokens = container.auth
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
        app.include_router(notification_router(container.notifications, tokens, container.outbox))


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the database opens and saga recovery starts in its lifespan."""
    configure_tracing()  # before build_container: PyMongo attaches its listeners to clients made after it
    container = build_container(settings or Settings())
    settings = container.settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await container.start()
        try:
            management = await _start_management(app, settings)
        except OSError as exc:
            await container.close()
            raise RuntimeError(f"the management port {settings.metrics_port} cannot be used: {exc}") from exc
        app.state.ready = True
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
        if container.dev_issuer is not None:
            logger.warning(
                "the development issuer is on (SHOP_OIDC_ISSUER is not set): tokens are signed with a key "
                "in the data folder; `ecommerce-saga token --customer ID` prints one. "
                "Never use it in production: set SHOP_OIDC_ISSUER and SHOP_OIDC_AUDIENCE"
            )
        try:
            yield
        finally:
            app.state.ready = False
            if management is not None:
                await management.stop()
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
        app.include_router(audit_router(container.audit_sources(), container.auth))
    install_observability(app, container)
    if container.dev_issuer is not None:
        _serve_development_issuer(app, container.dev_issuer)

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


async def _start_management(app: FastAPI, settings: Settings) -> ManagementServer | None:
    """Serve `/metrics` on the management port, unless it is turned off (port 0)."""
    if not settings.metrics_port:
        return None
    server = ManagementServer(
        app.state.observability.management_app, settings.metrics_host or settings.host, settings.metrics_port
    )
    await server.start()
    app.state.management = server
    return server


def _serve_development_issuer(app: FastAPI, issuer: DevelopmentIssuer) -> None:
    """The development issuer's discovery document and keys, for anyone (they hold no secret)."""

    @app.get("/.well-known/openid-configuration", tags=["identity"])
    async def discovery(request: Request) -> dict[str, object]:
        """The development issuer's OpenID Provider metadata (only without `SHOP_OIDC_ISSUER`)."""
        return issuer.discovery(str(request.url_for("jwks")))

    @app.get("/.well-known/jwks.json", tags=["identity"], name="jwks")
    async def jwks() -> dict[str, object]:
        """The development issuer's public signing keys (only without `SHOP_OIDC_ISSUER`)."""
        return issuer.jwks()


def app_from_environment() -> FastAPI:
    """The app factory a uvicorn worker process calls: settings and logging from `SHOP_*`."""
    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    return create_app(settings)
