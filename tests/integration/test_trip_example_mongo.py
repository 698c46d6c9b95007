"""The trip example runs on the MongoDB saga store too, and prints the same."""

from __future__ import annotations

import sys

from tests.examples import TRIP, documented, run_python


def test_prints_the_tutorials_output_when_run_on_mongodb(mongo_url: str) -> None:
    assert run_python(sys.executable, TRIP, "--mongodb-url", mongo_url) == documented("trip-output", "text")
