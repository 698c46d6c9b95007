"""`Recent`: a bounded map that forgets its least recently used entry first."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Recent(Generic[K, V]):
    """At most `size` entries; `put` beyond that forgets the least recently used one.

    For caching what never changes once written (a vault entry, an approved charge, a catalog
    price) or what is checked before use (a remembered version), so that forgetting only costs
    a read.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"a cache of {size} entries remembers nothing")
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._size = size

    def get(self, key: K) -> V | None:
        """The entry under `key` (now the most recently used), or None."""
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        """Remember `value` under `key`, forgetting the least recently used entry if full."""
        self._entries[key] = value
        self._entries.move_to_end(key)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def discard(self, key: K) -> None:
        """Forget the entry under `key`, if there is one."""
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries
