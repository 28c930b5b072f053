import pytest

from dicod_d2.utils.formatting import signed


@pytest.mark.parametrize("value, digits, text", [
    (1.24, 1, "+1.2"), (-0.26, 1, "-0.3"), (-0.04, 1, "+0.0"), (-0.0, 1, "+0.0"), (-0.06, 1, "-0.1"),
    (-0.004, 2, "+0.00"), (-3.0, 0, "-3"), (0.4, 0, "+0"),
])
def test_signed_never_prints_negative_zero(value, digits, text):
    assert signed(value, digits) == text
