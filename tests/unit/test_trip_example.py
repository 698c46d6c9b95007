"""The trip example (examples/trip) books one trip, undoes the other, and prints what the tutorial says."""

from __future__ import annotations

import sys

from tests.examples import TRIP, documented, run_python


def test_undoes_the_hotel_and_the_flight_when_no_car_is_left_with_the_memory_store() -> None:
    output = run_python(sys.executable, TRIP)

    assert output == documented("trip-output", "text")
    assert (
        "trip-bob: COMPENSATED car.sold_out, undone ['book_hotel', 'book_flight', 'on_compensated']" in output
    )
    assert "active bookings: ['CR-1', 'FL-1', 'HT-1']" in output  # Bob's flight and hotel were cancelled
