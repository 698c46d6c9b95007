"""Typed sagas: an input model validated at start, step handles with output models."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from ecommerce_saga.saga import (
    InvalidSagaInputError,
    NonRetryableError,
    Saga,
    SagaDefinitionError,
    SagaNotFoundError,
    SagaStatus,
    Step,
    StepContext,
)
from tests.unit.conftest import MakeEngine


class Trip(BaseModel):
    traveller: str
    nights: int


class Flight(BaseModel):
    booking: str
    seats: int


class Hotel(BaseModel):
    booking: str


FLIGHT = Step("book_flight", Flight)
HOTEL = Step("book_hotel", Hotel)


class Agency:
    def __init__(self, *, hotel_full: bool = False) -> None:
        self.hotel_full = hotel_full
        self.cancelled: list[Flight | None] = []
        self.seen_inputs: list[Trip] = []

    async def book_flight(self, ctx: StepContext[Trip]) -> Flight:
        self.seen_inputs.append(ctx.input)
        return Flight(booking=f"F-{ctx.input.traveller}", seats=1)

    async def cancel_flight(self, ctx: StepContext[Trip], flight: Flight | None) -> None:
        self.cancelled.append(flight)

    async def book_hotel(self, ctx: StepContext[Trip]) -> Hotel:
        flight = ctx.output_of(FLIGHT)  # typed: Flight
        if self.hotel_full:
            raise NonRetryableError("no room", code="hotel.full")
        return Hotel(booking=f"H-{flight.booking}-{ctx.input.nights}")

    def saga(self) -> Saga[Trip]:
        return Saga(
            "trip",
            [FLIGHT.does(self.book_flight).undoes(self.cancel_flight), HOTEL.does(self.book_hotel)],
            input=Trip,
        )


async def test_hands_steps_the_input_model_and_earlier_outputs_typed(make_engine: MakeEngine) -> None:
    agency = Agency()
    engine = make_engine(agency.saga())

    await engine.start("trip", Trip(traveller="ann", nights=2), saga_id="t-1")
    state = await engine.wait("t-1", timeout=5)

    assert state.status is SagaStatus.COMPLETED
    assert agency.seen_inputs == [Trip(traveller="ann", nights=2)]
    assert state.input == {"traveller": "ann", "nights": 2}  # stored as JSON
    assert state.outputs == {
        "book_flight": {"booking": "F-ann", "seats": 1},
        "book_hotel": {"booking": "H-F-ann-2"},
    }


async def test_hands_a_compensation_its_own_step_output_typed(make_engine: MakeEngine) -> None:
    agency = Agency(hotel_full=True)
    engine = make_engine(agency.saga())

    await engine.start("trip", {"traveller": "bob", "nights": "3"}, saga_id="t-1")  # validated, coerced
    state = await engine.wait("t-1", timeout=5)

    assert state.status is SagaStatus.COMPENSATED
    assert agency.cancelled == [Flight(booking="F-bob", seats=1)]


async def test_refuses_to_start_a_saga_when_its_input_is_invalid(make_engine: MakeEngine) -> None:
    engine = make_engine(Agency().saga())

    with pytest.raises(InvalidSagaInputError, match="nights"):
        await engine.start("trip", {"traveller": "ann"}, saga_id="t-1")

    with pytest.raises(SagaNotFoundError):
        await engine.get("t-1")


async def test_fails_the_step_when_an_earlier_output_is_read_before_it_exists(
    make_engine: MakeEngine,
) -> None:
    async def too_early(ctx: StepContext[Trip]) -> Flight:
        ctx.output_of(HOTEL)
        return Flight(booking="x", seats=1)

    engine = make_engine(Saga("trip", [FLIGHT.does(too_early), HOTEL.does(Agency().book_hotel)], input=Trip))

    await engine.start("trip", Trip(traveller="ann", nights=1), saga_id="t-1")
    state = await engine.wait("t-1", timeout=5)

    assert state.status is SagaStatus.COMPENSATED
    assert state.failure is not None
    assert "reads the output of 'book_hotel'" in state.failure.message


async def test_fails_the_step_when_its_action_returns_another_model(make_engine: MakeEngine) -> None:
    async def wrong(ctx: StepContext[Trip]) -> Flight:
        return Hotel(booking="x")  # type: ignore[return-value]

    engine = make_engine(Saga("trip", [FLIGHT.does(wrong)], input=Trip))

    await engine.start("trip", Trip(traveller="ann", nights=1), saga_id="t-1")
    state = await engine.wait("t-1", timeout=5)

    assert state.status is SagaStatus.COMPENSATED
    assert state.failure is not None
    assert "returned a Hotel, not a Flight" in state.failure.message


def test_refuses_an_input_that_is_not_a_model_class() -> None:
    with pytest.raises(SagaDefinitionError, match="input must be a pydantic model class"):
        Saga("trip", [FLIGHT.does(Agency().book_flight)], input=dict)  # type: ignore[arg-type]
