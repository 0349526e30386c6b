"""``weights_for``: what ``optimize`` means (issue 18 §2)."""

import pytest

from bkvy.core.routing.scoring import OPTIMIZE_PRESETS, Weights, weights_for


def test_cost_means_no_score() -> None:
    assert weights_for(None) is None
    assert weights_for("cost") is None


@pytest.mark.parametrize("name", sorted(OPTIMIZE_PRESETS))
def test_presets_sum_to_one(name: str) -> None:
    weights = weights_for(name)
    assert weights == OPTIMIZE_PRESETS[name]
    assert sum(weights) == pytest.approx(1.0)


def test_explicit_weights_are_normalised() -> None:
    assert weights_for({"cost": 1, "quality": 3}) == Weights(0.25, 0.0, 0.75, 0.0, 0.0)


@pytest.mark.parametrize(
    ("optimize", "message"),
    [
        ("cheapest", "optimize must be one of"),
        ({"speed": 1}, "unknown weight"),
        ({"cost": -1}, "between 0 and"),
        ({"cost": 0}, "above 0"),
    ],
)
def test_bad_optimize_says_why(optimize: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        weights_for(optimize)  # type: ignore[arg-type]
