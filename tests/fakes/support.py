"""What the fakes share: a journal of the effects they apply, outages on demand, and paging."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from ecommerce_saga.shared.contracts import Page, PageRequest, ServiceUnavailableError

T = TypeVar("T")


@dataclass(frozen=True)
class Effect:
    """One change a participant made to the world, such as `payment.refunded`."""

    order_id: str
    what: str


@dataclass
class Journal:
    """The effects every fake sharing this journal applied, in the order they were applied.

    Only real changes are recorded: a repeated call (idempotency), a compensation with nothing
    to undo, a refusal or a tombstone adds nothing. So a test reads what happened to an order,
    and in which order, across participants.
    """

    effects: list[Effect] = field(default_factory=list)

    def record(self, order_id: str, what: str) -> None:
        """Note that `what` happened to `order_id`."""
        self.effects.append(Effect(order_id, what))

    def of(self, order_id: str) -> list[str]:
        """What happened to `order_id`, in order."""
        return [effect.what for effect in self.effects if effect.order_id == order_id]


class Outage:
    """A participant that is down: its commands raise `ServiceUnavailableError` before doing anything."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._remaining: int | None = 0

    def begin(self, times: int | None = None) -> None:
        """Fail the next `times` commands, or every command until `end` when None."""
        self._remaining = times

    def end(self) -> None:
        """Answer again."""
        self._remaining = 0

    def check(self) -> None:
        """Raise if the participant is down, counting the failure."""
        if self._remaining is None:
            raise ServiceUnavailableError(f"the {self._name} service is unavailable")
        if self._remaining > 0:
            self._remaining -= 1
            raise ServiceUnavailableError(f"the {self._name} service is unavailable")


def page_of(items: Sequence[T], query: PageRequest) -> Page[T]:
    """One page of `items`, as `query` asks."""
    return Page(
        items=list(items[query.skip : query.skip + query.limit]),
        total=len(items),
        limit=query.limit,
        skip=query.skip,
    )
