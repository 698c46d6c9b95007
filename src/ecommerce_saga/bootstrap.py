"""The composition root: which modules this process hosts, and a local or HTTP adapter for each.

Every module is reached through its contract. A hosted module gets its local service (and its
routes, and its collections); a module hosted elsewhere gets the HTTP client of its `client.py`,
pointed at `SHOP_<MODULE>_URL`. Only a process hosting the order module runs the saga engine.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from asyncio import current_task
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import httpx
from beanie import Document, init_beanie
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from ecommerce_saga.db.connection import Database, is_database_outage
from ecommerce_saga.devtools.seed import load_demo_catalog
from ecommerce_saga.identity import DEV_AUDIENCE, DEV_ISSUER, DevelopmentIssuer, OidcClaims, TokenVerifier
from ecommerce_saga.identity.verifier import JwksCache, remote_jwks
from ecommerce_saga.modules.inventory.books import MongoInventoryBooks
from ecommerce_saga.modules.inventory.client import HttpInventoryService
from ecommerce_saga.modules.inventory.contract import InventoryService
from ecommerce_saga.modules.inventory.documents import DOCUMENT_MODELS as INVENTORY_DOCUMENTS
from ecommerce_saga.modules.inventory.repository import BeanieInventoryRepository
from ecommerce_saga.modules.inventory.service import STRAY_HOLD_SWEEP_SECONDS, LocalInventoryService
from ecommerce_saga.modules.notification.books import MongoNotificationBooks
from ecommerce_saga.modules.notification.client import HttpNotificationService
from ecommerce_saga.modules.notification.contract import NotificationService, Outbox
from ecommerce_saga.modules.notification.documents import DOCUMENT_MODELS as NOTIFICATION_DOCUMENTS
from ecommerce_saga.modules.notification.mail import MailRenderer, ShopMail
from ecommerce_saga.modules.notification.outbox import FileOutbox, OutboxSender
from ecommerce_saga.modules.notification.repository import (
    BeanieNotificationRepository,
    NotificationRepository,
)
from ecommerce_saga.modules.notification.sender import NotificationSender
from ecommerce_saga.modules.notification.service import LocalNotificationService
from ecommerce_saga.modules.notification.smtp import SmtpConfig, SmtpSecurity, SmtpSender
from ecommerce_saga.modules.order.books import MongoOrderBooks
from ecommerce_saga.modules.order.contract import OrderService
from ecommerce_saga.modules.order.documents import DOCUMENT_MODELS as ORDER_DOCUMENTS
from ecommerce_saga.modules.order.repository import BeanieOrderRepository, OrderRepository
from ecommerce_saga.modules.order.saga import OrderSagas, ParkedOrderMarker
from ecommerce_saga.modules.order.service import LocalOrderService
from ecommerce_saga.modules.order.tracker import OrderTracker
from ecommerce_saga.modules.payment.books import MongoPaymentBooks
from ecommerce_saga.modules.payment.client import HttpPaymentService
from ecommerce_saga.modules.payment.contract import PaymentService
from ecommerce_saga.modules.payment.documents import DOCUMENT_MODELS as PAYMENT_DOCUMENTS
from ecommerce_saga.modules.payment.gateway import SandboxGateway
from ecommerce_saga.modules.payment.repository import BeaniePaymentRepository, BeanieSandboxLedger
from ecommerce_saga.modules.payment.service import LocalPaymentService
from ecommerce_saga.modules.shipping.books import MongoShippingBooks
from ecommerce_saga.modules.shipping.client import HttpShippingService
from ecommerce_saga.modules.shipping.contract import ShippingService
from ecommerce_saga.modules.shipping.documents import DOCUMENT_MODELS as SHIPPING_DOCUMENTS
from ecommerce_saga.modules.shipping.repository import BeanieShipmentRepository
from ecommerce_saga.modules.shipping.service import LocalShippingService
from ecommerce_saga.observability.tracing import outgoing_trace_headers
from ecommerce_saga.operations.audit import AuditSources
from ecommerce_saga.saga import RetryPolicy, Saga, SagaEngine, SagaObserver, SagaStore, StoreUnavailableError
from ecommerce_saga.saga.stores.mongo import DEFAULT_COLLECTION, MongoSagaStore
from ecommerce_saga.settings import Settings
from ecommerce_saga.web.auth import Authenticator, split_tokens
from ecommerce_saga.web.service_client import ServiceClient, http_client

logger = logging.getLogger(__name__)

BACKGROUND_STOP_SECONDS = 2.0
"""How long shutdown waits for the periodic background passes it cancelled (orphan resumption, the
inventory's sweep) before it goes on without them."""

T = TypeVar("T")

DOCUMENTS_BY_MODULE: dict[str, list[type[Document]]] = {
    "order": ORDER_DOCUMENTS,
    "inventory": INVENTORY_DOCUMENTS,
    "payment": PAYMENT_DOCUMENTS,
    "shipping": SHIPPING_DOCUMENTS,
    "notification": NOTIFICATION_DOCUMENTS,
}


@dataclass
class Container:
    """Everything the app is made of, built once at start-up (no I/O until `start`)."""

    settings: Settings
    database: Database
    auth: Authenticator
    inventory: InventoryService | None = None
    payment: PaymentService | None = None
    shipping: ShippingService | None = None
    notifications: NotificationService | None = None
    orders: OrderService | None = None
    order_tracker: OrderTracker | None = None
    engine: SagaEngine | None = None
    clients: list[ServiceClient] = field(default_factory=list)
    resume_orphans: Callable[[], Awaitable[int]] | None = None
    """Starts the sagas of orders whose request died before starting them (order module only)."""
    dev_issuer: DevelopmentIssuer | None = None
    """The development issuer, when no identity provider is configured."""
    identity_http: httpx.AsyncClient | None = None
    """Fetches the identity provider's keys."""
    outbox: Outbox | None = None
    """The development outbox, when this process hosts the notification module and has no SMTP server."""
    documents: list[type[Document]] = field(default_factory=list)
    """The Beanie documents of the modules kept on MongoDB here (none if every repository is replaced)."""
    uses_database: bool = True
    """False when nothing here is kept on MongoDB (repositories and saga store all replaced)."""
    flushes: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    """What stores writes left for later (the inventory's forgotten marks), run before the database closes."""
    _background: list[asyncio.Task[None]] = field(default_factory=list)

    def hosts(self, module: str) -> bool:
        """True if this process serves `module`."""
        return module in self.settings.modules

    def audit_sources(self) -> AuditSources:
        """What the consistency audit reads here: every module's books, and this engine's sagas."""
        return audit_sources(self.database.db, self.engine.store if self.engine is not None else None)

    async def start(self) -> None:
        """Open the database, create indexes, load demo data if asked, start saga recovery."""
        if self.uses_database:
            await self.database.open()
        try:
            if self.documents:
                await init_beanie(database=self.database.db, document_models=self.documents)
            if self.engine is not None and isinstance(self.engine.store, MongoSagaStore):
                await self.engine.store.create_indexes()
            if self.hosts("inventory") and self.inventory is not None and self.settings.loads_demo_catalog:
                await load_demo_catalog(self.inventory)
            if self.engine is not None:
                await self.engine.start_background()
            if self.resume_orphans is not None:
                self._repeat(
                    "resuming orphaned orders",
                    self.resume_orphans,
                    self.settings.saga_recovery_interval_seconds,
                )
            if self.hosts("inventory") and isinstance(self.inventory, LocalInventoryService):
                self._repeat(
                    "giving back holds no reservation records",
                    self.inventory.give_back_unrecorded_holds,
                    STRAY_HOLD_SWEEP_SECONDS,
                )
        except BaseException:
            await self.database.close()
            raise

    def _repeat(self, what: str, job: Callable[[], Awaitable[object]], interval: float) -> None:
        """Run `job` now, then every `interval` seconds until `close()`, backing off in an outage."""

        async def forever() -> None:
            this = current_task()
            assert this is not None  # noqa: S101 - run as a task
            outages = 0  # passes in a row that met a database outage: back off, as saga recovery does
            while True:
                try:
                    await job()
                    outages = 0
                except Exception as exc:
                    if this.cancelling():  # close() cancelled the pass, and it failed for that
                        raise asyncio.CancelledError from exc
                    if not (isinstance(exc, StoreUnavailableError) or is_database_outage(exc)):
                        logger.exception("%s failed; retrying at the next interval", what)
                    else:  # an outage: no traceback
                        outages += 1
                        logger.warning("%s skipped: %s", what, exc)
                backoff = min(2**outages, SagaEngine.OUTAGE_BACKOFF)
                await asyncio.sleep(interval * backoff)

        self._background.append(asyncio.create_task(forever(), name=what))

    async def close(self) -> None:
        """Stop the engine, close the clients and the database."""
        for task in self._background:
            task.cancel()
        if self._background:  # a pass stopped in the middle is harmless: each pass is complete on its own
            _, stuck = await asyncio.wait(self._background, timeout=BACKGROUND_STOP_SECONDS)
            if stuck:
                logger.warning(
                    "background work still running %.0f s after shutdown asked it to stop; left behind",
                    BACKGROUND_STOP_SECONDS,
                    extra={"tasks": sorted(task.get_name() for task in stuck)},
                )
        if self.engine is not None:
            await self.engine.stop(grace=self.settings.saga_shutdown_grace_seconds)
        for flush in self.flushes:
            try:
                await flush()
            except PyMongoError as exc:  # tidying only: what a lost flush leaves stored is harmless
                logger.warning("writes left for shutdown were not stored: %s", exc)
        for client in self.clients:
            await client.aclose()
        if self.identity_http is not None:
            await self.identity_http.aclose()
        await self.database.close()


def mongo_saga_store(db: AsyncDatabase[dict[str, Any]]) -> MongoSagaStore:
    """The order module's saga store on the shop's database `db`."""
    return MongoSagaStore(db[DEFAULT_COLLECTION])


def audit_sources(db: AsyncDatabase[dict[str, Any]], sagas: SagaStore | None = None) -> AuditSources:
    """What the consistency audit reads: each module's books on `db`, and `sagas` (default: on `db`).

    Every module's read port is its own `books.py` on its own collections; the audit sees them
    through their contracts only.
    """
    return AuditSources(
        sagas=sagas if sagas is not None else mongo_saga_store(db),
        orders=MongoOrderBooks(db),
        inventory=MongoInventoryBooks(db),
        payments=MongoPaymentBooks(db),
        shipping=MongoShippingBooks(db),
        notifications=MongoNotificationBooks(db),
    )


def _tokens(configured: str | None, name: str) -> tuple[str, ...]:
    tokens = split_tokens(configured)
    if tokens:
        return tokens
    generated = secrets.token_urlsafe(24)
    logger.warning(
        "SHOP_%s_TOKEN is not set; a random one is used for this run and not shown "
        "(operators: `ecommerce-saga token --admin` with the development issuer)",
        name.upper(),
    )
    return (generated,)


@dataclass(frozen=True)
class Identity:
    """How this process checks callers: the authenticator, and what it needs kept and closed."""

    auth: Authenticator
    dev_issuer: DevelopmentIssuer | None = None
    http: httpx.AsyncClient | None = None


def oidc_claims(settings: Settings) -> OidcClaims:
    """What an access token must say: the configured issuer's, or the development issuer's."""
    return OidcClaims(
        issuer=settings.oidc_issuer or DEV_ISSUER,
        audience=settings.oidc_audience or DEV_AUDIENCE,
        customer_claim=settings.oidc_customer_claim,
        roles_claim=settings.oidc_roles_claim,
        admin_role=settings.oidc_admin_role,
        leeway_seconds=settings.oidc_leeway_seconds,
    )


def build_identity(settings: Settings) -> Identity:
    """The static tokens (configured, or generated and logged once) and the OIDC token verifier.

    With no `SHOP_OIDC_ISSUER` the development issuer signs and checks tokens with a key kept in
    the data folder (created here at first start, the only I/O of the composition).
    """
    service = _tokens(
        settings.service_token.get_secret_value() if settings.service_token else None, "service"
    )
    admin = _tokens(settings.admin_token.get_secret_value() if settings.admin_token else None, "admin")
    claims = oidc_claims(settings)
    if settings.oidc_issuer is None:
        issuer = DevelopmentIssuer.load_or_create(settings.data_dir, claims)
        verifier = TokenVerifier(claims, issuer.keys())
        return Identity(Authenticator(service_tokens=service, admin_tokens=admin, verifier=verifier), issuer)
    http = httpx.AsyncClient(timeout=5.0)
    jwks_url = str(settings.oidc_jwks_url) if settings.oidc_jwks_url else None
    keys = JwksCache(
        remote_jwks(settings.oidc_issuer, jwks_url, http), max_age_seconds=settings.oidc_jwks_cache_seconds
    )
    verifier = TokenVerifier(claims, keys)
    return Identity(Authenticator(service_tokens=service, admin_tokens=admin, verifier=verifier), http=http)


def smtp_config(settings: Settings) -> SmtpConfig:
    """The mail server's settings; the password from the setting or its file (read here, once)."""
    assert settings.smtp_host is not None  # noqa: S101 - called only with a mail server
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    if settings.smtp_password_file is not None:
        password = settings.smtp_password_file.read_text().strip()
    return SmtpConfig(
        host=settings.smtp_host, port=settings.smtp_port_or_default, security=SmtpSecurity(settings.smtp_tls),
        username=settings.smtp_username, password=password, timeout_seconds=settings.smtp_timeout_seconds,
        ca_file=str(settings.smtp_ca_file) if settings.smtp_ca_file else None,
    )  # fmt: skip


def build_notifications(
    settings: Settings, repository: NotificationRepository | None = None
) -> tuple[LocalNotificationService, Outbox | None]:
    """The notification service on SMTP, or on the development outbox (returned too) without a server.

    Its records are kept in `repository`, by default on MongoDB.
    """
    shop = ShopMail(settings.shop_name, settings.smtp_from, settings.shop_support_email)
    renderer = MailRenderer(shop)
    sender: NotificationSender
    outbox = None
    if settings.smtp_host is not None:
        sender = SmtpSender(smtp_config(settings), renderer)
        logger.info("notifications go to the mail server", extra={"smtp_host": settings.smtp_host})
    else:
        sender, outbox = OutboxSender(settings.outbox_dir, renderer), FileOutbox(settings.outbox_dir)
        logger.info("no SHOP_SMTP_HOST: notifications go to the development outbox",
                    extra={"outbox": str(settings.outbox_dir)})  # fmt: skip
    timeout = settings.smtp_timeout_seconds * 4  # connect, greet, TLS, login, data: a few round trips
    records = repository or BeanieNotificationRepository()
    service = LocalNotificationService(
        records, sender, send_timeout_seconds=timeout, message_domain=shop.domain
    )
    return service, outbox


class _Adapters:
    """Chooses, per module, the local service or the HTTP client."""

    def __init__(self, settings: Settings, service_token: str) -> None:
        self.settings = settings
        self.service_token = service_token
        self.clients: list[ServiceClient] = []

    def pick(self, module: str, local: Callable[[], T], remote: Callable[[ServiceClient], T]) -> T | None:
        """The local service if hosted, the HTTP client if it has a URL, else None (not needed)."""
        if module in self.settings.modules:
            return local()
        url = self.settings.url_of(module)
        if url is None:  # settings guarantee this only for modules the process does not need
            return None
        client = ServiceClient(
            module,
            http_client(url, self.settings.http_timeout_seconds),
            self.service_token,
            trace_headers=outgoing_trace_headers,
        )
        self.clients.append(client)
        logger.info("module reached over HTTP", extra={"remote_module": module, "url": url})
        return remote(client)


def _unchanged(saga: Saga[Any]) -> Saga[Any]:
    return saga


@dataclass(frozen=True)
class Overrides:
    """Replacements for what `build_container` would build from the settings (tests, benchmarks, tools).

    A participant given here is used as is: no local service and no HTTP client is built for it.
    When nothing hosted here is left on MongoDB (every hosted module replaced or given an
    in-memory repository, and the saga store replaced), the container opens no database.
    """

    inventory: InventoryService | None = None
    payment: PaymentService | None = None
    shipping: ShippingService | None = None
    notifications: NotificationService | None = None
    order_repository: OrderRepository | None = None
    """Where the order module keeps its orders; default: MongoDB (Beanie)."""
    notification_repository: NotificationRepository | None = None
    """Where a hosted notification module (not replaced above) keeps its records; default: MongoDB."""
    saga_store: SagaStore | None = None
    """Where sagas are kept; default: the MongoDB store on the shop's database."""
    adjust_saga: Callable[[Saga[Any]], Saga[Any]] = _unchanged
    """Changes each saga definition before the engine gets it (a test's shorter budgets, say)."""
    step_retry: RetryPolicy | None = None
    """The participant steps' retry policy; default: from `SHOP_SAGA_STEP_ATTEMPTS`."""
    observers: Sequence[SagaObserver] | None = None
    """The engine's observers; default: the engine's logging observer."""


@dataclass(frozen=True)
class _Participants:
    inventory: InventoryService | None
    payment: PaymentService | None
    shipping: ShippingService | None
    notifications: NotificationService | None
    clients: list[ServiceClient]
    outbox: Outbox | None
    on_mongo: list[str]
    """The modules whose local service keeps its records on MongoDB."""
    flushes: list[Callable[[], Awaitable[None]]]
    """See `Container.flushes`."""


def _participants(settings: Settings, service_token: str, overrides: Overrides) -> _Participants:
    """Each participant: the override, the local service if hosted, the HTTP client if it has a URL."""
    adapters = _Adapters(settings, service_token)
    outbox: list[Outbox] = []
    on_mongo: list[str] = []
    flushes: list[Callable[[], Awaitable[None]]] = []

    def local_notifications() -> NotificationService:
        service, found = build_notifications(settings, overrides.notification_repository)
        outbox.extend([found] if found is not None else [])
        on_mongo.extend([] if overrides.notification_repository else ["notification"])
        return service

    def local_inventory() -> InventoryService:
        on_mongo.append("inventory")
        repository = BeanieInventoryRepository()
        flushes.append(repository.flush)
        return LocalInventoryService(repository)

    def local_payment() -> PaymentService:
        on_mongo.append("payment")
        return LocalPaymentService(BeaniePaymentRepository(), SandboxGateway(BeanieSandboxLedger()))

    def local_shipping() -> ShippingService:
        on_mongo.append("shipping")
        return LocalShippingService(BeanieShipmentRepository(), settings.shipping_countries)

    remote_inventory: Callable[[ServiceClient], InventoryService] = HttpInventoryService
    remote_payment: Callable[[ServiceClient], PaymentService] = HttpPaymentService
    remote_shipping: Callable[[ServiceClient], ShippingService] = HttpShippingService
    remote_notifications: Callable[[ServiceClient], NotificationService] = HttpNotificationService
    inventory = overrides.inventory or adapters.pick("inventory", local_inventory, remote_inventory)
    payment = overrides.payment or adapters.pick("payment", local_payment, remote_payment)
    shipping = overrides.shipping or adapters.pick("shipping", local_shipping, remote_shipping)
    notifications = overrides.notifications or adapters.pick(
        "notification", local_notifications, remote_notifications
    )
    return _Participants(
        inventory,
        payment,
        shipping,
        notifications,
        adapters.clients,
        outbox[0] if outbox else None,
        on_mongo,
        flushes,
    )


def build_container(settings: Settings, overrides: Overrides | None = None) -> Container:
    """THE composition root: the shop from `settings`, with `overrides` replacing parts of it.

    No I/O but the development issuer's key: `Container.start()` opens the database and starts
    the engine. Which modules this process hosts is `settings.modules`, decided here only.
    """
    overrides = overrides or Overrides()
    url = settings.mongodb_url.get_secret_value() if settings.mongodb_url else None
    database = Database.configure(
        url,
        settings.mongodb_db,
        settings.data_dir,
        settings.mongodb_start_timeout_seconds,
        settings.mongodb_timeout_seconds,
        operation_timeout=settings.mongodb_operation_timeout_seconds,
    )
    identity = build_identity(settings)
    parts = _participants(settings, identity.auth.first_service_token, overrides)
    orders = _orders(settings, database, parts, overrides) if "order" in settings.modules else None
    on_mongo = [*parts.on_mongo, *(["order"] if orders and overrides.order_repository is None else [])]
    documents = [doc for name in settings.modules if name in on_mongo for doc in DOCUMENTS_BY_MODULE[name]]
    return Container(
        settings=settings,
        database=database,
        auth=identity.auth,
        dev_issuer=identity.dev_issuer,
        identity_http=identity.http,
        inventory=parts.inventory,
        payment=parts.payment,
        shipping=parts.shipping,
        notifications=parts.notifications,
        orders=orders.service if orders else None,
        order_tracker=orders.tracker if orders else None,
        engine=orders.engine if orders else None,
        resume_orphans=orders.resume_orphans if orders else None,
        clients=parts.clients,
        outbox=parts.outbox,
        flushes=parts.flushes,
        documents=documents,
        uses_database=bool(documents) or (orders is not None and overrides.saga_store is None),
    )


@dataclass(frozen=True)
class _Orders:
    tracker: OrderTracker
    engine: SagaEngine
    service: LocalOrderService
    resume_orphans: Callable[[], Awaitable[int]]


def _orders(settings: Settings, database: Database, parts: _Participants, overrides: Overrides) -> _Orders:
    """The order module: its tracker of orders, its sagas on the engine, its service."""
    inventory, payment, shipping, notifications = (
        parts.inventory,
        parts.payment,
        parts.shipping,
        parts.notifications,
    )
    if inventory is None or payment is None or shipping is None or notifications is None:
        raise RuntimeError("the order module needs every other module")  # settings prevent this
    tracker = OrderTracker(overrides.order_repository or BeanieOrderRepository())
    # Orders and sagas on one MongoDB database: an order's insert goes with its saga's, in one
    # command, and so does its confirmation with the saga's save that opens confirm_order.
    together = overrides.order_repository is None and overrides.saga_store is None
    sagas = OrderSagas(
        tracker,
        inventory,
        payment,
        shipping,
        notifications,
        step_timeout=settings.saga_step_timeout_seconds,
        step_retry=overrides.step_retry
        or RetryPolicy(
            initial_interval=0.1, maximum_interval=5.0, maximum_attempts=settings.saga_step_attempts
        ),
        best_effort_retry=RetryPolicy(
            initial_interval=0.5, maximum_interval=60.0, maximum_attempts=settings.saga_compensation_attempts
        ),
        replace_write=BeanieOrderRepository.replace_write if together else None,
    )
    engine = SagaEngine(
        overrides.saga_store or mongo_saga_store(database.db),
        [overrides.adjust_saga(saga) for saga in sagas.definitions()],
        worker_id=settings.worker_id,
        lease_seconds=settings.saga_lease_seconds,
        recovery_interval=settings.saga_recovery_interval_seconds,
        unknown_definition_park_after=settings.saga_unknown_definition_park_seconds,
        is_outage=is_database_outage,  # a participant's database timing out pauses the saga
        observers=overrides.observers,
    )
    engine.add_observer(ParkedOrderMarker(tracker))
    service = LocalOrderService(
        tracker,
        engine,
        inventory,
        payment,
        wait_seconds=settings.order_wait_seconds,
        insert_write=BeanieOrderRepository.insert_write if together else None,
    )
    orphan_age = timedelta(seconds=settings.order_orphan_seconds)
    return _Orders(tracker, engine, service, lambda: service.resume_orphans(orphan_age))
