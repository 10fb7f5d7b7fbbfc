"""The shared visual language: head colours, the highlight colour, limits, labels and plurals."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import to_rgb

from viz.style import (
    HEAD_COLORS,
    HIGHLIGHT_COLOR,
    OUTLIER_RATIO,
    head_color,
    labels_that_fit,
    plural,
    signed_limit,
)


def linear_rgb(colour: str) -> np.ndarray:
    """sRGB components (0..1) made linear in light, as the WCAG and CIELAB formulas need."""
    c = np.array(to_rgb(colour))
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def contrast_with_white(colour: str) -> float:
    """WCAG 2 contrast ratio of ``colour`` against white: 1 (invisible) to 21 (black)."""
    luminance = float(linear_rgb(colour) @ [0.2126, 0.7152, 0.0722])
    return 1.05 / (luminance + 0.05)


def lab(colour: str) -> np.ndarray:
    """CIELAB coordinates (D65 white): Euclidean distance ~ how different two colours look."""
    to_xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                       [0.0193, 0.1192, 0.9505]])  # fmt: skip
    xyz = to_xyz @ linear_rgb(colour) / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def difference(a: str, b: str) -> float:
    """CIE76 colour difference: about 2.3 is just noticeable, above 20 clearly different."""
    return float(np.linalg.norm(lab(a) - lab(b)))


def test_no_head_colour_looks_like_the_highlight() -> None:
    for h, colour in enumerate(HEAD_COLORS):
        assert difference(colour, HIGHLIGHT_COLOR) > 40, f"head {h} ({colour}) looks highlighted"


def test_twelve_heads_get_twelve_clearly_different_colours() -> None:
    colours = [head_color(h) for h in range(12)]
    assert len(set(colours)) == 12
    closest = min(difference(a, b) for i, a in enumerate(colours) for b in colours[i + 1 :])
    assert closest > 20
    assert head_color(12) == head_color(0), "more heads than colours: the palette repeats"


def test_every_head_colour_is_readable_as_text_on_white() -> None:
    # WCAG AA for normal text: 4.5 : 1 (the old light tab20 shades of heads >= 10 had ~1.7)
    for h in range(len(HEAD_COLORS)):
        assert contrast_with_white(head_color(h)) >= 4.5, f"head {h} ({head_color(h)})"
    assert contrast_with_white("#000000") == pytest.approx(21.0)


def test_signed_limit_ignores_a_few_outliers() -> None:
    typical = np.abs(np.linspace(-0.05, 0.05, 1000))
    assert signed_limit(typical) == pytest.approx(0.05)  # no outliers: max |value|
    with_outliers = np.concatenate([typical, [1.8, 1.7]])  # MiniLM's W_pos has a few like this
    limit = signed_limit(with_outliers)
    assert limit == pytest.approx(np.percentile(with_outliers, 99))
    assert 1.8 > OUTLIER_RATIO * limit
    assert signed_limit(np.array([])) == 0.0
    assert signed_limit(np.zeros(5)) == 0.0


def test_labels_that_fit_and_plural() -> None:
    assert labels_that_fit(2.0, 8.0) == 12  # 144 points / 12 points per label
    assert labels_that_fit(0.1, 10.0) == 2
    assert plural(1, "head") == "1 head"
    assert plural(12, "layer") == "12 layers"
    assert plural(0, "head") == "0 heads"


def test_block_max_keeps_a_sharp_pattern_dark_and_masks_empty_blocks():
    from viz.style import block_max

    weights = np.eye(6, k=-1)  # a previous-token head: one weight 1.0 per row
    shown = np.ones((6, 6), dtype=bool)
    shown[:, 4:] = False  # two masked keys
    pooled = block_max(weights, shown, 2)  # 6 cells -> 3 blocks of 2
    assert pooled.shape == (3, 3)
    np.testing.assert_array_equal(pooled[[0, 1], [0, 1]], [1.0, 1.0])  # not faded to 1/4
    assert pooled[0, 1] == 0.0
    assert np.ma.getmaskarray(pooled)[:, 2].all(), "keys 4 and 5 are masked"
    partly_outside = block_max(weights, np.ones((6, 6), dtype=bool), 4)  # 2 blocks cover 8
    np.testing.assert_array_equal(partly_outside, [[1.0, 0.0], [1.0, 1.0]])
    only_masked = block_max(weights, np.zeros((6, 6), dtype=bool), 3)
    assert np.ma.getmaskarray(only_masked).all()
    same = block_max(weights, shown, 1)
    np.testing.assert_array_equal(same.data, weights)
    np.testing.assert_array_equal(np.ma.getmaskarray(same), ~shown)


def test_weight_limit_counts_shown_cells_only():
    from viz.style import shown_mask, weight_limit

    weights = np.array([[0.2, 0.8], [0.9, 0.1]])
    shown = shown_mask(np.ones((2, 2), dtype=bool), np.array([True, False]))
    np.testing.assert_array_equal(shown, [[True, True], [False, False]])
    assert weight_limit(weights, shown) == 0.8, "the padding row's 0.9 does not count"
    assert weight_limit(weights, np.zeros((2, 2), dtype=bool)) == 1.0


def test_span_is_a_contiguous_slice_of_the_positions():
    from viz.checks import check_span
    from viz.style import span_note

    assert check_span(None, 5) == range(5)
    assert check_span(slice(-2, None), 5) == range(3, 5)
    assert span_note(range(3, 5), 5) == "tokens 3-4 of 5" and span_note(range(5), 5) == ""
    with pytest.raises(TypeError, match="span must be a slice"):
        check_span([1, 2], 5)
    with pytest.raises(ValueError, match="step 1"):
        check_span(slice(0, 4, 2), 5)
    with pytest.raises(ValueError, match="selects no position of the 5 tokens"):
        check_span(slice(7, 9), 5)
