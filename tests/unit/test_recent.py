"""`Recent`: the bounded LRU map behind the caches of vault entries, charges, prices, orders."""

from __future__ import annotations

import pytest

from ecommerce_saga.shared.recent import Recent


def test_forgets_the_least_recently_used_entry_when_full() -> None:
    recent: Recent[str, int] = Recent(2)
    recent.put("a", 1)
    recent.put("b", 2)
    assert recent.get("a") == 1  # "a" is now the most recently used

    recent.put("c", 3)

    assert "b" not in recent
    assert (recent.get("a"), recent.get("c"), len(recent)) == (1, 3, 2)


def test_putting_a_key_again_replaces_its_value_and_refreshes_it() -> None:
    recent: Recent[str, int] = Recent(2)
    recent.put("a", 1)
    recent.put("b", 2)

    recent.put("a", 10)
    recent.put("c", 3)

    assert recent.get("a") == 10
    assert "b" not in recent


def test_discard_forgets_one_entry_and_ignores_an_unknown_key() -> None:
    recent: Recent[str, int] = Recent(4)
    recent.put("a", 1)

    recent.discard("a")
    recent.discard("never")

    assert recent.get("a") is None
    assert len(recent) == 0


def test_refuses_a_size_that_remembers_nothing() -> None:
    with pytest.raises(ValueError, match="remembers nothing"):
        Recent(0)
