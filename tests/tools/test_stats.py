"""Statistics against textbook values."""

from __future__ import annotations

import pytest

from arbor.tools.stats import percentile, t_quantile, welch_interval


@pytest.mark.parametrize(("df", "expected"), [(1, 12.706), (2, 4.303), (4, 2.776), (10, 2.228), (30, 2.042),
                                              (120, 1.980)])
def test_t_quantile_matches_tables(df: int, expected: float) -> None:
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=1e-3)
    assert t_quantile(0.025, df) == pytest.approx(-expected, abs=1e-3)


def test_extreme_quantiles_of_heavy_tails() -> None:
    assert t_quantile(0.99999, 1) == pytest.approx(31830.99, rel=1e-3)


def test_percentile_interpolates_like_numpy() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([1, 2, 3, 4], 99) == pytest.approx(3.97)
    assert percentile([5], 90) == 5


def test_pooled_interval() -> None:
    from arbor.tools.stats import pooled_interval

    assert pooled_interval([1.0], [2.0, 3.0]) is None
    diff, low, high = pooled_interval([10.0, 11.0, 12.0], [20.0, 21.0, 22.0, 23.0])
    assert diff == pytest.approx(10.5)
    # pooled variance = (2*1 + 3*(5/3)) / 5 = 1.4; se = sqrt(1.4*(1/3+1/4)); df = 5, t = 2.571
    assert (high - low) / 2 == pytest.approx(2.5706 * (1.4 * (1 / 3 + 1 / 4)) ** 0.5, abs=1e-3)


def test_welch_interval() -> None:
    assert welch_interval([1.0], [2.0, 3.0]) is None
    diff, low, high = welch_interval([10.0, 11.0, 12.0], [20.0, 21.0, 22.0])
    assert diff == 10.0
    # equal variances 1, n=3 each: se = sqrt(2/3), df = 4, t = 2.776
    assert (high - low) / 2 == pytest.approx(2.776 * (2 / 3) ** 0.5, abs=1e-3)
