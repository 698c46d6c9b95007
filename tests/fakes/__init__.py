"""In-memory fakes of the participant modules, for unit tests of the order module and its sagas.

Each fake implements its module's `Protocol` (mypy checks it), is idempotent per order the way
the contract asks, and records what happened as state: its own records, plus the effects it
applied in a `Journal` the fakes of one test share, so that a test can read across participants
what was done and undone, and in which order.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from tests.fakes.inventory import FakeInventoryService
from tests.fakes.notification import FakeNotificationService
from tests.fakes.payment import FakePaymentService
from tests.fakes.shipping import SERVED_COUNTRIES, FakeShippingService
from tests.fakes.support import Effect, Journal

__all__ = [
    "SERVED_COUNTRIES",
    "Effect",
    "FakeInventoryService",
    "FakeNotificationService",
    "FakeParticipants",
    "FakePaymentService",
    "FakeShippingService",
    "Journal",
]


@dataclass
class FakeParticipants:
    """The four participants of the order sagas, sharing one journal."""

    journal: Journal
    inventory: FakeInventoryService
    payment: FakePaymentService
    shipping: FakeShippingService
    notifications: FakeNotificationService

    @classmethod
    def create(cls, countries: Collection[str] = SERVED_COUNTRIES) -> FakeParticipants:
        """Fresh participants; shipping serves `countries`."""
        journal = Journal()
        return cls(
            journal=journal,
            inventory=FakeInventoryService(journal),
            payment=FakePaymentService(journal),
            shipping=FakeShippingService(countries, journal),
            notifications=FakeNotificationService(journal),
        )
