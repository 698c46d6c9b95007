"""Trip booking on the saga engine: a flight, a hotel and a car, all booked or none.

Two travellers book a trip. Ann's trip to Lisbon is booked in full. Bob's trip to Reykjavik
fails at the car (no cars left there), so the engine undoes the hotel and the flight, in
reverse order, and the saga's ``on_compensated`` hook tells Bob. The three suppliers are
simulated in memory; each books once per idempotency key, as a real supplier's API would
(a retried or recovered step must not book twice).

Run it with the in-memory store, or with MongoDB (the sagas then survive a crash of the process)::

    python examples/trip/trip.py
    python examples/trip/trip.py --mongodb-url mongodb://localhost:27017   # or TRIP_MONGODB_URL

Only the engine is needed: ``pip install ./engine`` (add ``[mongo]`` for the MongoDB store).
docs/saga-engine.md walks through this file.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pydantic import BaseModel

from ecommerce_saga.saga import (
    NonRetryableError,
    RetryPolicy,
    Saga,
    SagaEngine,
    SagaStore,
    Step,
    StepContext,
)
from ecommerce_saga.saga.stores.memory import InMemorySagaStore

# --- the saga's input and its steps' outputs: pydantic models, stored as JSON


class TripRequest(BaseModel):
    """What the traveller asks for: validated when the saga starts."""

    traveller: str
    city: str
    nights: int


class Booking(BaseModel):
    """A supplier's booking: what a step returns, and what its compensation cancels."""

    reference: str


class HotelBooking(Booking):
    """The hotel also says for how many nights."""

    nights: int


# --- the steps: a persisted name (never change it) and the model of the step's output

FLIGHT = Step("book_flight", Booking)
HOTEL = Step("book_hotel", HotelBooking)
CAR = Step("book_car", Booking)


class Supplier:
    """A supplier's booking API, simulated: books once per idempotency key, cancels idempotently."""

    def __init__(self, kind: str, prefix: str, sold_out: frozenset[str] = frozenset()) -> None:
        self.kind, self.prefix, self.sold_out = kind, prefix, sold_out
        self.by_key: dict[str, str] = {}
        self.active: set[str] = set()

    async def book(self, city: str, idempotency_key: str) -> str:
        """Book (once per key); a business refusal is a `NonRetryableError`: no retry, undo."""
        if city in self.sold_out:
            raise NonRetryableError(f"no {self.kind} left in {city}", code=f"{self.kind}.sold_out")
        if idempotency_key not in self.by_key:  # a retry of the same step books nothing new
            self.by_key[idempotency_key] = f"{self.prefix}-{len(self.by_key) + 1}"
            self.active.add(self.by_key[idempotency_key])
        return self.by_key[idempotency_key]

    async def cancel(self, reference: str) -> None:
        """Cancel a booking; cancelling twice is harmless."""
        self.active.discard(reference)


class TripAgency:
    """The trip saga, bound to the three suppliers it calls and the messages it sends."""

    def __init__(self) -> None:
        self.airline = Supplier("flight", "FL")
        self.hotels = Supplier("hotel", "HT")
        self.cars = Supplier("car", "CR", sold_out=frozenset({"Reykjavik"}))
        self.messages: list[str] = []

    def saga(self) -> Saga[TripRequest]:
        """The definition: three compensatable steps, each undone by its own compensation."""
        retry = RetryPolicy(initial_interval=0.05, maximum_attempts=5)  # for transient failures
        return Saga(
            "trip",
            [
                FLIGHT.does(self.book_flight, retry=retry).undoes(self.cancel_flight),
                HOTEL.does(self.book_hotel, retry=retry).undoes(self.cancel_hotel),
                CAR.does(self.book_car, retry=retry).undoes(self.cancel_car),
            ],
            input=TripRequest,
            on_compensated=self.tell_traveller,
        )

    async def book_flight(self, ctx: StepContext[TripRequest]) -> Booking:
        return Booking(reference=await self.airline.book(ctx.input.city, ctx.idempotency_key))

    async def cancel_flight(self, ctx: StepContext[TripRequest], flight: Booking | None) -> None:
        if flight is not None:  # None: the booking never succeeded, nothing to cancel
            await self.airline.cancel(flight.reference)

    async def book_hotel(self, ctx: StepContext[TripRequest]) -> HotelBooking:
        flight = ctx.output_of(FLIGHT)  # an earlier step's output, typed (a Booking)
        reference = await self.hotels.book(ctx.input.city, f"{ctx.idempotency_key}/{flight.reference}")
        return HotelBooking(reference=reference, nights=ctx.input.nights)

    async def cancel_hotel(self, ctx: StepContext[TripRequest], hotel: HotelBooking | None) -> None:
        if hotel is not None:
            await self.hotels.cancel(hotel.reference)

    async def book_car(self, ctx: StepContext[TripRequest]) -> Booking:
        return Booking(reference=await self.cars.book(ctx.input.city, ctx.idempotency_key))

    async def cancel_car(self, ctx: StepContext[TripRequest], car: Booking | None) -> None:
        if car is not None:
            await self.cars.cancel(car.reference)

    async def tell_traveller(self, ctx: StepContext[TripRequest]) -> None:
        """The saga failed and everything is undone (runs once, after the last compensation)."""
        why = ctx.failure.message if ctx.failure else "unknown"
        self.messages.append(f"{ctx.input.traveller}: your trip to {ctx.input.city} is not booked ({why})")


@asynccontextmanager
async def open_store(mongodb_url: str | None) -> AsyncIterator[SagaStore]:
    """The in-memory store, or the MongoDB store on `mongodb_url` (imported only then: PyMongo
    is needed for it alone)."""
    if mongodb_url is None:
        yield InMemorySagaStore()
        return
    from pymongo import AsyncMongoClient  # noqa: PLC0415 - optional dependency

    from ecommerce_saga.saga.stores.mongo import MongoSagaStore  # noqa: PLC0415

    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongodb_url)
    try:
        collection = client["trip_example"]["trip_sagas"]
        await collection.drop()  # a fresh example on every run
        store = MongoSagaStore(collection)
        await store.create_indexes()
        yield store
    finally:
        await client.close()


async def main(mongodb_url: str | None = None) -> None:
    """Book Ann's trip and Bob's, and print what happened."""
    agency = TripAgency()
    async with open_store(mongodb_url) as store:
        engine = SagaEngine(store, [agency.saga()], observers=[])
        trips = {
            "trip-ann": TripRequest(traveller="ann", city="Lisbon", nights=3),
            "trip-bob": TripRequest(traveller="bob", city="Reykjavik", nights=2),
        }
        for saga_id, request in trips.items():
            await engine.start("trip", request, saga_id=saga_id)  # stored, then run in the background
            state = await engine.wait(saga_id, timeout=10)
            failure = f" {state.failure.code}, undone {state.compensation_plan}" if state.failure else ""
            print(f"{saga_id}: {state.status}{failure}")
            print(f"  outputs: {state.outputs}")
        await engine.stop()
    print("active bookings:", sorted(agency.airline.active | agency.hotels.active | agency.cars.active))
    print("messages:", agency.messages)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mongodb-url", default=os.environ.get("TRIP_MONGODB_URL"))
    asyncio.run(main(parser.parse_args().mongodb_url))
