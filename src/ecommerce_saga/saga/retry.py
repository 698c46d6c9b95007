"""Retry policies: exponential backoff with a cap and full jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass

from ecommerce_saga.saga.errors import SagaDefinitionError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how fast a step is retried after a retryable failure.

    The delay before attempt ``n + 1`` is drawn uniformly from
    ``[0, min(maximum_interval, initial_interval * backoff_coefficient ** (n - 1))]``
    ("full jitter"), so many sagas failing together do not retry in lockstep.

    Args:
        initial_interval: Upper bound of the first delay, in seconds.
        backoff_coefficient: Growth factor of the bound per attempt (>= 1).
        maximum_interval: Cap of the bound, in seconds.
        maximum_attempts: Attempts in all, the first included; ``None`` means unlimited.
    """

    initial_interval: float = 0.05
    backoff_coefficient: float = 2.0
    maximum_interval: float = 5.0
    maximum_attempts: int | None = 5

    def __post_init__(self) -> None:
        if self.initial_interval < 0 or self.maximum_interval < 0:
            raise SagaDefinitionError("retry intervals must not be negative")
        if self.backoff_coefficient < 1:
            raise SagaDefinitionError("backoff_coefficient must be >= 1")
        if self.maximum_attempts is not None and self.maximum_attempts < 1:
            raise SagaDefinitionError("maximum_attempts must be >= 1 (or None for unlimited)")

    def allows_another(self, attempts_made: int) -> bool:
        """Whether a further attempt is allowed after `attempts_made` attempts."""
        return self.maximum_attempts is None or attempts_made < self.maximum_attempts

    def delay(self, attempts_made: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before the next attempt, after `attempts_made` attempts."""
        exponent = max(attempts_made - 1, 0)
        bound = min(self.maximum_interval, self.initial_interval * self.backoff_coefficient**exponent)
        return (rng or random).uniform(0, bound)


NO_RETRY = RetryPolicy(maximum_attempts=1)
"""Run once; any failure is final."""
