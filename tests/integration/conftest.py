"""Fixtures shared by the integration tests."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from ecommerce_saga.saga.stores.mongo import MongoSagaStore


@pytest.fixture
async def store(mongo_db: AsyncDatabase[dict[str, Any]]) -> MongoSagaStore:
    """A MongoDB saga store on the test's fresh database, its indexes created."""
    store = MongoSagaStore(mongo_db["sagas"])
    await store.create_indexes()
    return store
