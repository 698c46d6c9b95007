"""Time helpers, the shop's only ones: timezone-aware UTC at millisecond precision (what MongoDB
stores), and instants as integer epoch milliseconds (what the embedded database compares exactly)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def to_millisecond(instant: datetime) -> datetime:
    """`instant` truncated to the millisecond, so that it reads back from MongoDB unchanged."""
    return instant.replace(microsecond=instant.microsecond // 1000 * 1000)


def utcnow() -> datetime:
    """The current UTC time, truncated to milliseconds."""
    return to_millisecond(datetime.now(UTC))


def epoch_ms(instant: datetime) -> int:
    """Milliseconds since the Unix epoch, rounded up (exact for millisecond-precision times).

    Rounding up keeps `t < instant` true exactly when `epoch_ms(t) < epoch_ms(instant)` for
    millisecond-precision `t` (and the same for `>=`), so range queries on epoch milliseconds
    match the datetimes. Integer arithmetic: no float rounding.
    """
    return -(-(instant - _EPOCH) // _MILLISECOND)


def from_epoch_ms(milliseconds: int) -> datetime:
    """The UTC instant `milliseconds` after the Unix epoch (the inverse of `epoch_ms`)."""
    return _EPOCH + milliseconds * _MILLISECOND
