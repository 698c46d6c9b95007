"""Saga definitions are validated when defined, and retry policies compute bounded, jittered delays."""

from __future__ import annotations

import random

import pytest

from ecommerce_saga.saga import (
    RetryPolicy,
    Saga,
    SagaDefinitionError,
    SagaEngine,
    SagaStep,
    StepContext,
    StepKind,
)
from ecommerce_saga.saga.stores.memory import InMemorySagaStore


async def _noop(ctx: StepContext) -> None:
    return None


def _step(name: str, kind: StepKind = StepKind.COMPENSATABLE, *, undo: bool = True) -> SagaStep:
    return SagaStep(name, _noop, _noop if undo else None, kind=kind)


def test_rejects_saga_when_it_has_no_steps() -> None:
    with pytest.raises(SagaDefinitionError, match="saga 'order' has no steps"):
        Saga("order", [])


def test_rejects_saga_when_a_step_name_is_used_twice() -> None:
    with pytest.raises(SagaDefinitionError, match="step name 'reserve' is used twice"):
        Saga("order", [_step("reserve"), _step("charge"), _step("reserve")])


@pytest.mark.parametrize("name", ["", "1st", "has space", "dots.not.allowed", "x" * 65, "ü"])
def test_rejects_step_when_its_name_is_malformed(name: str) -> None:
    with pytest.raises(SagaDefinitionError, match=r"step name .* must match"):
        _step(name)


@pytest.mark.parametrize("name", ["", "9lives", "with/slash"])
def test_rejects_saga_when_its_name_is_malformed(name: str) -> None:
    with pytest.raises(SagaDefinitionError, match=r"saga name .* must match"):
        Saga(name, [_step("a")])


def test_accepts_names_when_they_use_letters_digits_dash_and_underscore() -> None:
    saga = Saga("place-order_v2", [_step("reserve_items-1"), _step("X" * 64)])

    assert [step.name for step in saga.steps] == ["reserve_items-1", "X" * 64]


@pytest.mark.parametrize("kind", [StepKind.PIVOT, StepKind.RETRIABLE])
def test_rejects_pivot_and_retriable_steps_when_they_have_a_compensation(kind: StepKind) -> None:
    with pytest.raises(SagaDefinitionError, match=f"'charge': a {kind.value} step has no compensation"):
        _step("charge", kind, undo=True)


def test_rejects_compensatable_step_when_it_follows_the_pivot() -> None:
    steps = [_step("reserve"), _step("charge", StepKind.PIVOT, undo=False), _step("note")]

    with pytest.raises(SagaDefinitionError, match="compensatable step 'note' cannot follow pivot"):
        Saga("order", steps)


def test_rejects_compensatable_step_when_it_follows_a_retriable_step() -> None:
    steps = [_step("ship", StepKind.RETRIABLE, undo=False), _step("reserve")]

    with pytest.raises(SagaDefinitionError, match="cannot follow retriable step 'ship'"):
        Saga("order", steps)


def test_rejects_pivot_when_it_follows_a_retriable_step() -> None:
    steps = [_step("ship", StepKind.RETRIABLE, undo=False), _step("pay", StepKind.PIVOT, undo=False)]

    with pytest.raises(SagaDefinitionError, match="pivot step 'pay' cannot follow retriable"):
        Saga("order", steps)


def test_rejects_saga_when_it_has_two_pivots() -> None:
    steps = [_step("a", StepKind.PIVOT, undo=False), _step("b", StepKind.PIVOT, undo=False)]

    with pytest.raises(SagaDefinitionError, match=r"more than one pivot step: \['a', 'b'\]"):
        Saga("order", steps)


def test_accepts_saga_when_kinds_are_in_pivot_order() -> None:
    saga = Saga(
        "order",
        [
            _step("reserve"),
            _step("charge", StepKind.PIVOT, undo=False),
            _step("ship", StepKind.RETRIABLE, undo=False),
            _step("notify", StepKind.RETRIABLE, undo=False),
        ],
    )

    assert saga.step_index("ship") == 2


@pytest.mark.parametrize("timeout", [0, -1.5])
def test_rejects_step_when_its_timeout_is_not_positive(timeout: float) -> None:
    with pytest.raises(SagaDefinitionError, match="step 'a': timeout must be positive"):
        SagaStep("a", _noop, timeout=timeout)


@pytest.mark.parametrize("deadline", [0, -3])
def test_rejects_saga_when_its_deadline_is_not_positive(deadline: float) -> None:
    with pytest.raises(SagaDefinitionError, match="deadline must be positive"):
        Saga("order", [_step("a")], deadline=deadline)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial_interval": -0.1}, "retry intervals must not be negative"),
        ({"maximum_interval": -1}, "retry intervals must not be negative"),
        ({"backoff_coefficient": 0.5}, "backoff_coefficient must be >= 1"),
        ({"maximum_attempts": 0}, r"maximum_attempts must be >= 1 \(or None for unlimited\)"),
    ],
)
def test_rejects_retry_policy_when_a_bound_is_invalid(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(SagaDefinitionError, match=message):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_rejects_engine_when_two_definitions_share_a_name() -> None:
    sagas = [Saga("order", [_step("a")]), Saga("order", [_step("b")])]

    with pytest.raises(SagaDefinitionError, match="saga 'order' version 1 is defined twice"):
        SagaEngine(InMemorySagaStore(), sagas, observers=[])


def test_definition_error_is_a_value_error_when_caught_generically() -> None:
    with pytest.raises(ValueError, match="has no steps"):
        Saga("order", ())


def test_allows_attempts_until_the_maximum_when_bounded() -> None:
    policy = RetryPolicy(maximum_attempts=3)

    assert [policy.allows_another(n) for n in (1, 2, 3, 4)] == [True, True, False, False]


def test_allows_attempts_forever_when_unbounded() -> None:
    assert RetryPolicy(maximum_attempts=None).allows_another(10_000)


def test_draws_delay_with_full_jitter_when_given_a_seeded_random() -> None:
    policy = RetryPolicy(initial_interval=0.1, backoff_coefficient=2.0, maximum_interval=1.0)
    fraction = random.Random(42).random()

    delays = [policy.delay(n, random.Random(42)) for n in (0, 1, 2, 3, 4, 5, 6)]

    bounds = [0.1, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert delays == [pytest.approx(bound * fraction) for bound in bounds]


def test_keeps_every_delay_within_the_capped_bound_when_drawn_many_times() -> None:
    policy = RetryPolicy(initial_interval=0.05, backoff_coefficient=3.0, maximum_interval=0.5)
    rng = random.Random(7)

    for attempts_made in range(1, 12):
        bound = min(0.5, 0.05 * 3.0 ** (attempts_made - 1))
        draws = [policy.delay(attempts_made, rng) for _ in range(200)]
        assert all(0 <= d <= bound for d in draws)
        assert max(draws) > bound * 0.8  # full jitter spreads over the whole range


def test_repeats_the_same_delays_when_the_seed_is_the_same() -> None:
    policy = RetryPolicy()

    first = [policy.delay(n, random.Random(3)) for n in range(1, 6)]
    second = [policy.delay(n, random.Random(3)) for n in range(1, 6)]

    assert first == second


def test_delays_nothing_when_the_initial_interval_is_zero() -> None:
    assert RetryPolicy(initial_interval=0).delay(4, random.Random(1)) == 0
