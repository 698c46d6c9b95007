"""The composition root: opens the database, builds each module's service and the saga engine."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from beanie import Document, init_beanie

from ecommerce_saga.demo import load_demo_catalog
from ecommerce_saga.modules.inventory.contract import InventoryService
from ecommerce_saga.modules.inventory.documents import DOCUMENT_MODELS as INVENTORY_DOCUMENTS
from ecommerce_saga.modules.inventory.service import LocalInventoryService
from ecommerce_saga.modules.notification.contract import NotificationService
from ecommerce_saga.modules.notification.documents import DOCUMENT_MODELS as NOTIFICATION_DOCUMENTS
from ecommerce_saga.modules.notification.sender import LoggingSender
from ecommerce_saga.modules.notification.service import LocalNotificationService
from ecommerce_saga.modules.order.contract import OrderService
from ecommerce_saga.modules.order.documents import DOCUMENT_MODELS as ORDER_DOCUMENTS
from ecommerce_saga.modules.order.repository import OrderRepository
from ecommerce_saga.modules.order.saga import OrderSagas
from ecommerce_saga.modules.order.service import LocalOrderService
from ecommerce_saga.modules.payment.contract import PaymentService
from ecommerce_saga.modules.payment.documents import DOCUMENT_MODELS as PAYMENT_DOCUMENTS
from ecommerce_saga.modules.payment.gateway import SandboxGateway
from ecommerce_saga.modules.payment.service import LocalPaymentService
from ecommerce_saga.modules.shipping.contract import ShippingService
from ecommerce_saga.modules.shipping.documents import DOCUMENT_MODELS as SHIPPING_DOCUMENTS
from ecommerce_saga.modules.shipping.service import LocalShippingService
from ecommerce_saga.persistence import Database
from ecommerce_saga.saga import SagaEngine
from ecommerce_saga.saga.stores.mongo import MongoSagaStore
from ecommerce_saga.settings import Settings
from ecommerce_saga.web.auth import Tokens

logger = logging.getLogger(__name__)

DOCUMENT_MODELS: list[type[Document]] = [
    *INVENTORY_DOCUMENTS,
    *PAYMENT_DOCUMENTS,
    *SHIPPING_DOCUMENTS,
    *NOTIFICATION_DOCUMENTS,
    *ORDER_DOCUMENTS,
]


@dataclass
class Container:
    """Everything the app is made of, built once at start-up."""

    settings: Settings
    database: Database
    tokens: Tokens
    engine: SagaEngine
    inventory: InventoryService
    payment: PaymentService
    shipping: ShippingService
    notifications: NotificationService
    orders: OrderService

    async def start(self) -> None:
        """Open the database, create indexes, load demo data if asked, start saga recovery."""
        await self.database.open()
        try:
            await init_beanie(database=self.database.db, document_models=DOCUMENT_MODELS)
            store = self.engine.store
            if isinstance(store, MongoSagaStore):
                await store.create_indexes()
            if self.settings.loads_demo_catalog:
                await load_demo_catalog(self.inventory)
            await self.engine.start_background()
        except BaseException:
            await self.database.close()
            raise

    async def close(self) -> None:
        """Stop the engine and close the database."""
        await self.engine.stop()
        await self.database.close()


def _token(configured: str | None, name: str) -> str:
    if configured:
        return configured
    generated = secrets.token_urlsafe(24)
    logger.warning("SHOP_%s_TOKEN is not set; generated one for this run: %s", name.upper(), generated)
    return generated


def build_tokens(settings: Settings) -> Tokens:
    """The service and admin tokens: configured, or generated (and logged once) for this run."""
    service = settings.service_token.get_secret_value() if settings.service_token else None
    admin = settings.admin_token.get_secret_value() if settings.admin_token else None
    return Tokens(service=_token(service, "service"), admin=_token(admin, "admin"))


def build_container(settings: Settings) -> Container:
    """Wire every module. No I/O: `Container.start()` opens the database and starts the engine."""
    url = settings.mongodb_url.get_secret_value() if settings.mongodb_url else None
    database = Database.configure(
        url, settings.mongodb_db, settings.data_dir, settings.embedded_start_timeout_seconds
    )
    inventory = LocalInventoryService()
    payment = LocalPaymentService(SandboxGateway())
    shipping = LocalShippingService(settings.shipping_countries)
    notifications = LocalNotificationService(LoggingSender())
    repository = OrderRepository()
    sagas = OrderSagas(repository, inventory, payment, shipping, notifications)
    engine = SagaEngine(
        MongoSagaStore(database.db["sagas"]),
        sagas.definitions(),
        worker_id=settings.worker_id,
        lease_seconds=settings.saga_lease_seconds,
        recovery_interval=settings.saga_recovery_interval_seconds,
    )
    orders = LocalOrderService(
        repository, engine, inventory, payment, wait_seconds=settings.order_wait_seconds
    )
    return Container(
        settings=settings,
        database=database,
        tokens=build_tokens(settings),
        engine=engine,
        inventory=inventory,
        payment=payment,
        shipping=shipping,
        notifications=notifications,
        orders=orders,
    )
