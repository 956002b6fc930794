"""Retry policy: exponential backoff with full jitter, as a pure function."""

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long to wait before attempt ``n + 1`` after attempt ``n`` failed.

    The delay grows as ``base * factor ** (attempt - 1)``, capped at ``cap`` seconds;
    ``jitter`` (0..1) spreads that share of the delay at random so that many jobs failing
    together do not retry together.
    """

    base: float = 1.0
    factor: float = 2.0
    cap: float = 300.0
    jitter: float = 0.5

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after ``attempt`` (1-based) failed."""
        raw = min(self.cap, self.base * self.factor ** max(0, attempt - 1))
        if self.jitter <= 0:
            return raw
        spread = raw * self.jitter
        return raw - spread + (rng or random).random() * spread

    def next_run_at(
        self, attempt: int, now: datetime, rng: random.Random | None = None
    ) -> datetime:
        """When the retry after ``attempt`` may run."""
        return now + timedelta(seconds=self.delay(attempt, rng))


def policy_of(own: Mapping[str, float] | None, fallback: RetryPolicy) -> RetryPolicy:
    """A job's own policy (``{base, factor, cap, jitter}``, its stored ``retry``), else
    ``fallback`` (its task's)."""
    if not own:
        return fallback
    return RetryPolicy(base=float(own["base"]), factor=float(own["factor"]),
                       cap=float(own["cap"]), jitter=float(own["jitter"]))
