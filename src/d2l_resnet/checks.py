"""Argument checks shared by the package, so one mistake always gets one message."""

from __future__ import annotations

__all__ = ["check_positive_int"]


def check_positive_int(name: str, value: object, *, allow_none: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` is an integer >= 1 (or None, if allowed).

    ``True`` and ``False`` are refused although Python counts them as integers.
    """
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        expected = "a positive integer or None" if allow_none else "a positive integer"
        raise ValueError(f"{name} must be {expected}, got {value!r}")
