"""The shared time helpers: millisecond truncation and epoch milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ecommerce_saga.shared.clock import epoch_ms, from_epoch_ms, to_millisecond, utcnow


def test_counts_whole_milliseconds_when_instant_is_millisecond_precise() -> None:
    assert epoch_ms(datetime(1970, 1, 1, 0, 0, 1, 899_000, tzinfo=UTC)) == 1899
    assert epoch_ms(datetime(2030, 1, 1, tzinfo=UTC)) == 1_893_456_000_000


def test_rounds_up_when_instant_has_microseconds() -> None:
    assert epoch_ms(datetime(1970, 1, 1, 0, 0, 0, 250_500, tzinfo=UTC)) == 251


def test_keeps_order_when_a_range_bound_has_microseconds() -> None:
    bound = datetime(2030, 1, 1, 0, 0, 0, 250_500, tzinfo=UTC)
    before, after = to_millisecond(bound), to_millisecond(bound) + timedelta(milliseconds=1)
    assert (before < bound) is (epoch_ms(before) < epoch_ms(bound))
    assert (after >= bound) is (epoch_ms(after) >= epoch_ms(bound))


def test_reads_back_the_instant_when_converted_there_and_back() -> None:
    instant = datetime(2031, 7, 4, 12, 30, 15, 123_000, tzinfo=UTC)
    assert from_epoch_ms(epoch_ms(instant)) == instant
    assert from_epoch_ms(0) == datetime(1970, 1, 1, tzinfo=UTC)


def test_drops_microseconds_when_truncating() -> None:
    assert to_millisecond(datetime(2030, 1, 1, 0, 0, 0, 123_999, tzinfo=UTC)).microsecond == 123_000
    now = utcnow()
    assert (now.tzinfo, now.microsecond % 1000) == (UTC, 0)
