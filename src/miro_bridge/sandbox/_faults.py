"""Drawing the fault, if any, that each Miro request suffers."""

from __future__ import annotations

import enum
import random

import attrs

from miro_bridge.sandbox._config import Faults


class FaultKind(enum.Enum):
    """What happens to a request instead of (or before) its normal answer."""

    NONE = "none"
    HANG = "hang"
    DROP = "drop"
    APPLY_THEN_DROP = "apply_then_drop"
    RATE_LIMIT = "rate_limit"
    ERROR = "error"


@attrs.frozen
class Fault:
    """The fate of one request: a kind, an added latency, and the status of an ERROR."""

    kind: FaultKind
    latency_seconds: float = 0.0
    status: int = 0


class FaultInjector:
    """Draws one `Fault` per request from a seeded generator.

    Every draw takes the same three numbers from the generator, whichever faults are on, so
    a seed fixes the sequence of fates.
    """

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        # Faults are test noise, not security: a seedable PRNG is what is wanted.
        self._random = random.Random(faults.seed)  # noqa: S311

    def draw(self) -> Fault:
        """The fate of the next request."""
        faults = self.faults
        low, high = faults.latency_ms
        latency = self._random.uniform(low, high) / 1000.0
        roll = self._random.random()
        status = faults.error_statuses[self._random.randrange(len(faults.error_statuses))]
        bands = (
            (faults.hang_rate, FaultKind.HANG),
            (faults.drop_rate, FaultKind.DROP),
            (faults.rate_limit_rate, FaultKind.RATE_LIMIT),
            (faults.error_rate, FaultKind.ERROR),
            (faults.apply_then_drop_rate, FaultKind.APPLY_THEN_DROP),
        )
        edge = 0.0
        for rate, kind in bands:
            edge += rate
            if roll < edge:
                return Fault(kind, latency, status if kind is FaultKind.ERROR else 0)
        return Fault(FaultKind.NONE, latency)
