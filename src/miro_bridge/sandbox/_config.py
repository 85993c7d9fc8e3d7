"""Settings of the sandbox and of the faults it injects."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs


def _positive(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be positive, not {value!r}")


@attrs.frozen
class SandboxConfig:
    """How the sandbox behaves: the one OAuth app it knows, the credit budget, time.

    `clock` answers epoch seconds; tests pass one built on `trio.current_time()` so that
    `autojump_clock` drives token expiry and the credit window.
    """

    client_id: str = "sandbox-client"
    # The documented default of the try-out app, not a credential.
    client_secret: str = "sandbox-secret"  # noqa: S105
    credits_per_minute: int = attrs.field(default=100_000, validator=_positive)
    credit_window_seconds: float = attrs.field(default=60.0, validator=_positive)
    """How long a credit window lasts (Miro's is a minute; shorter drains faster in tests)."""
    clock: Callable[[], float] = time.time
    hang_seconds: float = attrs.field(default=3600.0, validator=_positive)


def _rate(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be between 0 and 1, not {value!r}")


def _latency(instance: object, attribute: attrs.Attribute[Any], value: tuple[float, float]) -> None:
    low, high = value
    if not 0.0 <= low <= high or not math.isfinite(high):
        raise ValueError(f"latency_ms must be [low, high] with 0 <= low <= high, not {value!r}")


def _statuses(instance: object, attribute: attrs.Attribute[Any], value: tuple[int, ...]) -> None:
    if not value or any(not 500 <= status <= 599 for status in value):
        raise ValueError(f"error_statuses must be 5xx statuses, not {value!r}")


def _to_latency(value: Iterable[float]) -> tuple[float, float]:
    low, high = value
    return (float(low), float(high))


def _to_statuses(value: Iterable[int]) -> tuple[int, ...]:
    return tuple(value)


@attrs.frozen
class Faults:
    """Faults injected into Miro routes (never into `/_admin`); `Faults()` injects none.

    Each request draws one outcome: hang, drop, 429, a 5xx, or carried out then dropped, with
    the given rates (their sum is at most 1), plus a latency drawn from `latency_ms`. The
    same seed and the same sequence of requests give the same faults.
    """

    latency_ms: tuple[float, float] = attrs.field(
        default=(0.0, 0.0), converter=_to_latency, validator=_latency
    )
    error_rate: float = attrs.field(default=0.0, converter=float, validator=_rate)
    error_statuses: tuple[int, ...] = attrs.field(
        default=(500, 502, 503), converter=_to_statuses, validator=_statuses
    )
    rate_limit_rate: float = attrs.field(default=0.0, converter=float, validator=_rate)
    hang_rate: float = attrs.field(default=0.0, converter=float, validator=_rate)
    drop_rate: float = attrs.field(default=0.0, converter=float, validator=_rate)
    apply_then_drop_rate: float = attrs.field(default=0.0, converter=float, validator=_rate)
    """Carry the request out, then drop the connection before answering: a create that
    happened, and whose answer the client never got."""
    seed: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.instance_of(int))
    )

    def __attrs_post_init__(self) -> None:
        total = (
            self.error_rate
            + self.rate_limit_rate
            + self.hang_rate
            + self.drop_rate
            + self.apply_then_drop_rate
        )
        if total > 1.0 + 1e-9:
            raise ValueError(f"the fault rates add up to {total}, more than 1")

    @classmethod
    def from_json(cls, body: object) -> Faults:
        """Read the body of `POST /_admin/faults`; raise ValueError when it is not valid."""
        if not isinstance(body, Mapping):
            raise ValueError("the faults must be a JSON object")
        known = {field.name for field in attrs.fields(cls)}
        unknown = sorted(set(body) - known)
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(unknown)}")
        try:
            return cls(**body)
        except (TypeError, ValueError) as error:
            raise ValueError(str(error)) from None
