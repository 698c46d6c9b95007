"""The composition root with overrides: which collections a container registers, and when it
needs no database at all."""

from __future__ import annotations

from pathlib import Path

from ecommerce_saga.bootstrap import DOCUMENTS_BY_MODULE, Overrides, build_container
from ecommerce_saga.modules.notification.repository import InMemoryNotificationRepository
from ecommerce_saga.modules.order.repository import InMemoryOrderRepository
from ecommerce_saga.saga.stores.memory import InMemorySagaStore
from ecommerce_saga.settings import Settings
from tests.fakes import FakeParticipants


def _settings(tmp_path: Path) -> Settings:
    return Settings(service_token="s", admin_token="a", data_dir=tmp_path, demo_catalog=False, metrics_port=0)


def _documents(*modules: str) -> list[type]:
    return [doc for name in modules for doc in DOCUMENTS_BY_MODULE[name]]


def test_keeps_every_hosted_module_on_mongodb_when_nothing_is_replaced(tmp_path: Path) -> None:
    container = build_container(_settings(tmp_path))

    assert container.uses_database
    assert container.documents == _documents("order", "inventory", "payment", "shipping", "notification")


def test_registers_only_the_modules_left_on_mongodb_when_repositories_are_replaced(tmp_path: Path) -> None:
    overrides = Overrides(
        order_repository=InMemoryOrderRepository(), notification_repository=InMemoryNotificationRepository()
    )

    container = build_container(_settings(tmp_path), overrides)

    assert container.uses_database
    assert container.documents == _documents("inventory", "payment", "shipping")


def test_needs_no_database_when_every_repository_and_the_saga_store_are_replaced(tmp_path: Path) -> None:
    fakes = FakeParticipants.create()
    overrides = Overrides(
        inventory=fakes.inventory, payment=fakes.payment, shipping=fakes.shipping,
        notifications=fakes.notifications, order_repository=InMemoryOrderRepository(),
        saga_store=InMemorySagaStore(),
    )  # fmt: skip

    container = build_container(_settings(tmp_path), overrides)
    sagas_on_mongodb = build_container(
        _settings(tmp_path), Overrides(**{**vars(overrides), "saga_store": None})
    )

    assert (container.uses_database, container.documents) == (False, [])
    assert (sagas_on_mongodb.uses_database, sagas_on_mongodb.documents) == (True, [])
