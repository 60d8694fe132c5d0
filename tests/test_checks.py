"""The shared argument check."""

import pytest

from d2l_resnet.checks import check_positive_int


@pytest.mark.parametrize("value", [1, 7, 10**9])
def test_accepts_positive_integers(value: int) -> None:
    check_positive_int("n", value)


@pytest.mark.parametrize("value", [0, -3, 2.0, "4", True, None])
def test_refuses_everything_else_by_name(value: object) -> None:
    with pytest.raises(ValueError, match=r"^n must be a positive integer, got "):
        check_positive_int("n", value)


def test_none_only_when_allowed() -> None:
    check_positive_int("resize", None, allow_none=True)
    with pytest.raises(ValueError, match="a positive integer or None, got 0"):
        check_positive_int("resize", 0, allow_none=True)
