"""Argument checks shared by the package, so one mistake always gets one message."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

__all__ = ["check_choice", "check_int", "check_known", "check_positive_int", "check_range"]


def check_int(name: str, value: object, *, minimum: int = 0, allow_none: bool = False
              ) -> None:
    """Raise ``ValueError`` unless ``value`` is an integer >= ``minimum`` (or None, if allowed).

    ``True`` and ``False`` are refused although Python counts them as integers.
    """
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = {0: "a non-negative integer", 1: "a positive integer"}.get(
            minimum, f"an integer >= {minimum}")
        expected = f"{kind} or None" if allow_none else kind
        raise ValueError(f"{name} must be {expected}, got {value!r}")


def check_positive_int(name: str, value: object, *, allow_none: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` is an integer >= 1 (or None, if allowed)."""
    check_int(name, value, minimum=1, allow_none=allow_none)


def check_range(name: str, value: object, low: float, high: float, *,
                high_open: bool = True, low_open: bool = False, hint: str = "") -> None:
    """Raise ``ValueError`` unless ``value`` is a finite number in the interval from low to high.

    Args:
        name: The argument's name, for the message.
        value: What was passed.
        low: The smallest value allowed (excluded with ``low_open``).
        high: The largest value allowed (excluded with ``high_open``; ``math.inf`` for none).
        high_open: Exclude ``high``.
        low_open: Exclude ``low``.
        hint: Appended to the message (e.g. ``"the book uses 0.05"``).
    """
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value)
          and (value > low if low_open else value >= low)
          and (value < high if high_open else value <= high))
    if not ok:
        interval = (f"{'(' if low_open else '['}{low:g}, "
                    f"{'inf' if math.isinf(high) else f'{high:g}'}{')' if high_open else ']'}")
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}"
                         + (f" ({hint})" if hint else ""))


def check_choice(name: str, value: object, choices: Sequence[object]) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; expected one of "
                         f"{', '.join(repr(c) for c in choices)}")


def check_known(what: str, names: Iterable[str], known: Iterable[str]) -> None:
    """Raise ``ValueError`` naming each of ``names`` that is not one of ``known``."""
    known = list(known)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown {what} {', '.join(map(repr, unknown))}; expected some of "
                         f"{', '.join(map(repr, known))}")
