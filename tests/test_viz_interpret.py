"""Figures of minitransformer.interpret: checks what was drawn (images, texts, lines, labels)."""

from __future__ import annotations

import io
from dataclasses import replace

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from minitransformer.interpret.diagnostics import DiagnosticThresholds, Flag, Report
from minitransformer.interpret.explanation import (
    RankingAgreement,
    TwinSeedResult,
    UniformAttentionResult,
)
from minitransformer.interpret.importance import PruningCurve
from minitransformer.interpret.similarity import classical_mds, head_distances, head_names
from minitransformer.interpret.stats import HeadRole, head_roles, head_statistics
from tests.readability import assert_readable
from viz.interpret import (
    CONSTANT_SPREAD,
    DIAGNOSTICS_FONTSIZE,
    FLAG_COLORS,
    STATISTIC_TITLES,
    TIE_SPREAD,
    TWIN_BARS,
    diagnostics_figure,
    head_similarity_figure,
    head_statistics_figure,
    heads_to_label,
    permutation_figure,
    pruning_curves_figure,
    ranking_agreement_figure,
    relevance_maps_figure,
    roles_title,
    short_role,
    spread_ties,
    text_color_on,
    tie_groups,
    token_scores_figure,
    twin_seeds_figure,
    uniform_attention_figure,
    value_weighted_figure,
)

S = 5


def drawn(fig: Figure) -> RendererAgg:
    """Draw ``fig`` (so text extents and layout are final) and return its renderer."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def inside(inner, outer, slack: float = 0.5) -> bool:
    """Whether bounding box ``inner`` lies within ``outer`` (pixels, with a little slack)."""
    return (
        inner.x0 >= outer.x0 - slack
        and inner.x1 <= outer.x1 + slack
        and inner.y0 >= outer.y0 - slack
        and inner.y1 <= outer.y1 + slack
    )


def weights() -> np.ndarray:
    """(2 layers, 1 batch, 3 heads, S, S): previous-token, self, uniform; twice."""
    prev = np.eye(S, k=-1)
    prev[0, 0] = 1.0
    layer = np.stack([prev, np.eye(S), np.full((S, S), 1 / S)])
    return np.stack([layer, layer[::-1]])[:, None]


def test_statistics_figure_draws_each_statistic_and_the_roles():
    stats = head_statistics(weights())
    roles = head_roles(stats)
    fig = head_statistics_figure(stats, roles, quantities=["entropy", "self", "previous"])
    visible = [ax for ax in fig.axes if ax.get_visible()]
    titles = [ax.get_title() for ax in visible]
    assert titles[:3] == [STATISTIC_TITLES[n] for n in ("entropy", "self", "previous")]
    assert titles[3].startswith("head roles")
    self_panel = visible[1]
    np.testing.assert_allclose(self_panel.images[0].get_array(), stats.self)
    assert self_panel.get_xlabel() == "head" and self_panel.get_ylabel() == "layer"
    texts = [t.get_text() for t in self_panel.texts]
    assert texts[1] == "1.00"  # layer 0, head 1 = the self head
    role_texts = [t.get_text() for t in visible[3].texts]
    assert role_texts[:3] == ["prev", "self", "broad"]
    assert short_role("positional (offset -2)") == "pos -2"
    assert short_role("special-token sink") == "sink"
    with pytest.raises(ValueError, match="unknown statistics"):
        head_statistics_figure(stats, quantities=["nonsense"])


@pytest.mark.parametrize("seed", range(5))
def test_heads_at_one_place_get_one_name_whatever_the_rounding(seed):
    """The rule, not the rounding: three places, two heads at each (equal up to noise in the
    last bits, as LAPACK leaves them); each place is named once, by its lowest index."""
    places = np.array([[1.0, 0.0], [-0.5, 0.8], [-0.5, -0.8]])
    coordinates = np.concatenate([places, places[::-1]])  # heads 3, 4, 5 = places 2, 1, 0
    noise = np.random.default_rng(seed).normal(scale=1e-15, size=coordinates.shape)
    assert heads_to_label(coordinates + noise, gap=0.1) == [0, 1, 2]
    assert heads_to_label(coordinates[::-1] + noise, gap=0.1) == [0, 1, 2]


def test_similarity_figure_draws_distances_and_named_points():
    A = weights()
    D = head_distances(A)
    X = classical_mds(D)
    names = head_names(2, 3)
    fig = head_similarity_figure(D, X, names, n_heads=3)
    by_title = {ax.get_title(): ax for ax in fig.axes}
    left = by_title["Jensen-Shannon distance between heads"]
    right = by_title["heads placed by MDS (close = attend alike)"]
    np.testing.assert_allclose(left.images[0].get_array(), D)
    assert left.get_title() == "Jensen-Shannon distance between heads"
    assert [t.get_text() for t in left.get_xticklabels()] == names
    layer_0, layer_1 = right.collections  # one scatter per layer
    np.testing.assert_allclose(np.concatenate([layer_0.get_offsets(), layer_1.get_offsets()]), X)
    # L1H2 = L0H0, L1H1 = L0H1, L1H0 = L0H2: one name per place, the lowest index's
    assert [t.get_text() for t in right.texts] == ["L0H0", "L0H1", "L0H2"]
    for text in right.texts:
        np.testing.assert_allclose(text.xy, X[names.index(text.get_text())])
    assert [t.get_text() for t in right.get_legend().get_texts()] == ["layer 0", "layer 1"]
    assert not (layer_0.get_facecolors()[0] == layer_1.get_facecolors()[0]).all()
    with pytest.raises(ValueError, match="coordinates"):
        head_similarity_figure(D, X[:3], names, n_heads=3)


def test_relevance_maps_share_one_scale_and_label_tokens():
    tokens = ["[CLS]", "a", "b", "c", "[SEP]"]
    a, b = np.eye(S), np.full((S, S), 0.2)
    fig = relevance_maps_figure({"raw": a, "rollout": b}, tokens)
    axes = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in axes] == ["raw", "rollout"]
    np.testing.assert_allclose(axes[1].images[0].get_array(), b)
    assert axes[0].images[0].get_clim() == axes[1].images[0].get_clim() == (0.0, 1.0)
    assert [t.get_text() for t in axes[0].get_xticklabels()] == tokens
    with pytest.raises(ValueError, match="must have shape"):
        relevance_maps_figure({"raw": a, "bad": np.eye(3)})


def test_token_colouring_colours_by_sign_and_size():
    tokens = ["the", "cat", "sat"]
    fig = token_scores_figure({"IG": np.array([2.0, -2.0, 0.0])}, tokens, highlight=1)
    ax = fig.axes[0]
    boxes = {t.get_text(): t for t in ax.texts if t.get_bbox_patch() is not None}
    assert set(boxes) == {"the", "cat", "sat"}
    red = boxes["the"].get_bbox_patch().get_facecolor()
    blue = boxes["cat"].get_bbox_patch().get_facecolor()
    white = boxes["sat"].get_bbox_patch().get_facecolor()
    assert red[0] > red[2] and blue[2] > blue[0]  # positive red, negative blue
    assert min(white[:3]) > 0.9  # zero is (near) white
    assert boxes["cat"].get_bbox_patch().get_edgecolor() == to_rgba("black")  # highlighted
    labels = [t.get_text() for t in ax.texts]
    assert "IG" in labels and "-2" in labels
    with pytest.raises(ValueError, match="like tokens"):
        token_scores_figure({"IG": np.zeros(2)}, tokens)


def test_pruning_figure_draws_one_line_per_order_and_the_threshold():
    by_importance = PruningCurve(
        [(0, 0)] * 3, np.arange(4), np.array([1.0, 0.98, 0.9, 0.3]), 3, "importance"
    )
    at_random = PruningCurve(
        [(0, 0)] * 3, np.arange(4), np.array([1.0, 0.6, 0.4, 0.3]), 3, "random"
    )
    fig = pruning_curves_figure([by_importance, at_random], "accuracy", fraction=0.9)
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["importance", "random", "90% of the full model"]
    np.testing.assert_allclose(lines[1].get_ydata(), at_random.metric)
    np.testing.assert_allclose(lines[2].get_ydata(), [0.9, 0.9])
    assert ax.get_xlabel() == "heads removed (of 3)" and ax.get_ylabel() == "accuracy"


def test_diagnostics_figure_colours_each_head_by_its_first_flag():
    flags = (
        Flag(0, 1, "padding", 0.9, 0.5, "0.90 of attention on padding"),
        Flag(0, 1, "uniform", 0.97, 0.95, "entropy ..."),
        Flag(1, 0, "duplicate", 0.01, 0.1, "JS distance 0.010 to L1H1"),
    )
    zeros = np.zeros((2, 2))
    report = Report(flags, zeros, zeros, zeros, zeros, None, "", DiagnosticThresholds(), 4, 0)
    fig = diagnostics_figure(report)
    ax = fig.axes[0]
    colors = ax.images[0].get_array()
    np.testing.assert_allclose(colors[0, 1], to_rgba(FLAG_COLORS["padding"]))
    np.testing.assert_allclose(colors[1, 0], to_rgba(FLAG_COLORS["duplicate"]))
    np.testing.assert_allclose(colors[0, 0], to_rgba(FLAG_COLORS["ok"]))
    assert [t.get_text() for t in ax.texts] == ["ok", "padding\nuniform", "duplicate", "ok"]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["padding", "duplicate", "ok"]
    assert ax.get_xlabel() == "head" and ax.get_ylabel() == "layer"


def test_permutation_figure_plots_the_median_change_against_peak_attention():
    changes = np.array([[0.1, -0.5], [0.3, 0.4], [-0.2, 0.6]])
    fig = permutation_figure(changes, np.array([0.3, 0.9]))
    points = fig.axes[0].collections[0].get_offsets()
    np.testing.assert_allclose(points, [[0.3, 0.2], [0.9, 0.5]])
    with pytest.raises(ValueError, match="max_attention"):
        permutation_figure(changes, np.array([0.3]))


def test_uniform_twin_and_ranking_figures_draw_their_numbers():
    results = [UniformAttentionResult("reverse", 600, 1.0, 0.31),
               UniformAttentionResult("histogram", 3000, 1.0, 1.0)]  # fmt: skip
    ax = uniform_attention_figure(results).axes[0]
    learned, uniform = ax.containers
    assert [bar.get_height() for bar in uniform] == [0.31, 1.0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["reverse", "histogram"]
    assert [t.get_text() for t in ax.figure.legends[0].get_texts()] == [
        "learned attention", "uniform attention"]  # fmt: skip

    twins = [TwinSeedResult(0, 1.0, 0.03, 0.0, 0.75, 0.67, 0.15),
             TwinSeedResult(4, 1.0, 0.91, 1.0, 0.98, 0.34, 0.73)]  # fmt: skip
    twin_figure = twin_seeds_figure(twins)
    ax = twin_figure.axes[0]
    assert len(ax.containers) == len(TWIN_BARS)
    on_twin = ax.containers[0]
    assert [bar.get_height() for bar in on_twin] == [0.03, 0.91]
    assert [bar.get_height() for bar in ax.containers[1]] == [0.75, 0.98]  # occlusion
    assert ax.get_xticklabels()[1].get_text() == "seed 4\nacc 1.00"
    legend = [t.get_text() for t in twin_figure.legends[0].get_texts()]
    assert legend == list(TWIN_BARS.values())

    rho = np.array([[[1.0, 0.5], [0.5, 1.0]], [[1.0, -0.1], [-0.1, 1.0]]])
    fig = ranking_agreement_figure(RankingAgreement(("attention", "occlusion"), rho))
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.images[0].get_array(), [[1.0, 0.2], [0.2, 1.0]])
    assert ax.images[0].get_clim() == (-1.0, 1.0)
    assert [t.get_text() for t in ax.texts] == ["1.00", "0.20", "0.20", "1.00"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["attention", "occlusion"]


# -- readability: what a gallery review found -------------------------------------------------


def test_cell_text_colour_follows_the_drawn_cell_colour():
    assert text_color_on("yellow") == "black" and text_color_on("navy") == "white"
    stats = head_statistics(weights())
    fig = head_statistics_figure(stats, quantities=["entropy", "self"])
    entropy_panel, self_panel = fig.axes[:2]
    for panel in (entropy_panel, self_panel):
        image = panel.images[0]
        cells = image.to_rgba(image.get_array())
        H = cells.shape[1]
        for k, text in enumerate(panel.texts):
            assert text.get_color() == text_color_on(cells[k // H, k % H])
    # viridis: the uniform head (layer 0, head 2) has the largest entropy, a light yellow cell
    assert entropy_panel.texts[2].get_color() == "black"
    # Blues: the self head's 1.00 is dark blue
    assert self_panel.texts[1].get_color() == "white"


def test_roles_title_explains_only_the_names_shown_and_fits_the_figure():
    stats = head_statistics(weights())
    fig = head_statistics_figure(stats, head_roles(stats), quantities=["self", "previous", "next"])
    renderer = drawn(fig)
    roles_panel = fig.axes[3]
    title = roles_panel.title.get_text()
    assert title.startswith("head roles") and "prev/next" in title
    assert "CLS" not in title and "sink" not in title  # no special tokens in these statistics
    for ax in fig.axes:
        if ax.get_visible():
            assert inside(ax.title.get_window_extent(renderer), fig.bbox), ax.get_title()
    sink = [HeadRole(0, 0, "special-token sink", ""), HeadRole(0, 1, "self", "")]
    assert roles_title(sink) == "head roles: sink = special tokens"
    assert roles_title([HeadRole(0, 0, "broad", "")]) == "head roles"


def test_similarity_figure_keeps_72_heads_readable():
    rng = np.random.default_rng(0)
    A = rng.dirichlet(np.ones(8), size=(6, 1, 12, 8))
    D = head_distances(A)
    X = classical_mds(D)
    names = head_names(6, 12)
    fig = head_similarity_figure(D, X, names, n_heads=12)
    renderer = drawn(fig)
    left, right = (ax for ax in fig.axes if ax.get_title())
    for label in left.get_yticklabels() + left.get_xticklabels():
        assert inside(label.get_window_extent(renderer), fig.bbox), label.get_text()
    shown = [t.get_text() for t in right.texts]
    assert 10 < len(shown) < len(names)  # a readable subset, not a pile
    right_box = right.get_window_extent(renderer)
    for text in right.texts:
        assert inside(text.get_window_extent(renderer), right_box), text.get_text()
    # names stand apart on the panel: no two closer than 0.3 inches
    at = np.array([right.transData.transform(X[names.index(n)]) for n in shown])
    gaps = np.linalg.norm(at[:, None] - at[None], axis=-1) + np.eye(len(at)) * 1e9
    assert gaps.min() >= 0.3 * fig.dpi
    # the farthest head from the centre is always named
    assert names[int(np.argmax(np.linalg.norm(X - X.mean(0), axis=1)))] in shown


def test_heads_to_label_names_every_head_that_stands_apart():
    square = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert heads_to_label(square, gap=0.5) == [0, 1, 2, 3]
    cluster = np.array([[0.0, 0.0], [0.01, 0.0], [0.0, 0.01], [5.0, 5.0]])
    named = heads_to_label(cluster, gap=0.5)
    assert 3 in named and len(named) == 2  # the outlier and one head for the cluster


def test_similarity_colour_bar_label_keeps_clear_of_the_mds_axis_label():
    A = weights()[:1, :, :2]  # 1 layer x 2 heads
    A = np.concatenate([A, A[:, :, ::-1]], axis=2)  # 4 heads
    D = head_distances(A)
    fig = head_similarity_figure(D, classical_mds(D), head_names(1, 4), n_heads=4)
    renderer = drawn(fig)
    colorbar = next(ax for ax in fig.axes if not ax.get_title())
    right = fig.axes[1]
    gap = right.yaxis.label.get_window_extent(renderer).x0
    gap -= colorbar.yaxis.label.get_window_extent(renderer).x1
    assert gap >= 0.1 * fig.dpi


def test_uniform_figure_title_fits_and_legend_leaves_the_bars_free():
    results = [UniformAttentionResult(task, 600, 1.0, 0.3) for task in ("a", "b", "c", "d")]
    fig = uniform_attention_figure(results)
    renderer = drawn(fig)
    ax = fig.axes[0]
    assert inside(ax.title.get_window_extent(renderer), fig.bbox)
    legend = fig.legends[0].get_window_extent(renderer)
    assert not legend.overlaps(ax.title.get_window_extent(renderer))
    for container in ax.containers:
        for bar in container:
            assert not legend.overlaps(bar.get_window_extent(renderer))


def test_pruning_figure_counts_whole_heads_and_shows_equal_curves():
    metric = np.array([1.0, 0.8, 0.5, 0.3, 0.2])
    a = PruningCurve([(0, 0)] * 4, np.arange(5), metric, 4, "gradient")
    b = PruningCurve([(0, 0)] * 4, np.arange(5), metric.copy(), 4, "ablation")
    fig = pruning_curves_figure([a, b], "accuracy")
    drawn(fig)
    ax = fig.axes[0]
    ticks = ax.get_xticks()
    np.testing.assert_array_equal(ticks, np.round(ticks))
    first, second = ax.get_lines()[:2]
    assert first.get_linestyle() != second.get_linestyle()
    assert first.get_marker() != second.get_marker()
    assert first.get_markersize() > second.get_markersize()  # the first peeks out


def test_token_colouring_draws_a_nearly_constant_row_pale_and_says_so():
    tokens = ["the", "cat", "sat"]
    scores = {"flat": np.array([1.0, 1.02, 0.98]), "IG": np.array([2.0, -2.0, 0.0])}
    assert np.ptp(scores["flat"]) < CONSTANT_SPREAD * 1.02
    ax = token_scores_figure(scores, tokens).axes[0]
    labels = [t.get_text() for t in ax.texts if t.get_bbox_patch() is None]
    assert "flat\n(≈ constant)" in labels and "IG" in labels
    boxes = [t.get_bbox_patch().get_facecolor() for t in ax.texts if t.get_bbox_patch()]
    flat, varied = boxes[:3], boxes[3:]
    assert all(min(face[:3]) > 0.5 for face in flat)  # pale, not saturated red
    assert min(varied[0][:3]) < 0.2  # the varied row's largest score is saturated


def test_relevance_maps_get_their_own_scales_when_one_column_dominates():
    rollout = np.full((S, S), 0.02)
    rollout[:, 0] = 0.9  # everything flows to the first token
    flow = np.full((S, S), 0.2) + 0.05 * np.eye(S)
    fig = relevance_maps_figure({"rollout": rollout, "flow": flow})  # default: own scales
    image_axes = [ax for ax in fig.axes if ax.images and ax.get_title()]
    assert [ax.images[0].get_clim() for ax in image_axes] == [(0.0, 0.9), (0.0, 0.25)]
    assert len(fig.axes) == 4  # a colour bar per map
    shared = relevance_maps_figure({"rollout": rollout, "flow": flow}, share_scale=True)
    image_axes = [ax for ax in shared.axes if ax.images and ax.get_title()]
    assert [ax.images[0].get_clim() for ax in image_axes] == [(0.0, 0.9), (0.0, 0.9)]
    assert len(shared.axes) == 3
    alike = relevance_maps_figure({"a": flow, "b": 2 * flow})  # no dominant column: shared
    assert {ax.images[0].get_clim() for ax in alike.axes if ax.get_title()} == {(0.0, 0.5)}


def diagnostics_report(L: int, H: int, flags: tuple[Flag, ...] = ()) -> Report:
    zeros = np.zeros((L, H))
    return Report(flags, zeros, zeros, zeros, zeros, None, "", DiagnosticThresholds(), 4, 0)


def test_diagnostics_figure_fits_its_title_and_grows_its_cells_with_the_grid():
    fig = diagnostics_figure(diagnostics_report(1, 1))
    renderer = drawn(fig)
    assert inside(fig.axes[0].title.get_window_extent(renderer), fig.bbox)

    flags = (Flag(2, 3, "padding", 0.9, 0.5, ""), Flag(2, 3, "uniform", 0.97, 0.95, ""))
    fig = diagnostics_figure(diagnostics_report(6, 12, flags))
    renderer = drawn(fig)
    ax = fig.axes[0]
    assert all(t.get_fontsize() == DIAGNOSTICS_FONTSIZE >= 9 for t in ax.texts)
    box = ax.get_window_extent(renderer)
    cell_w, cell_h = box.width / 12, box.height / 6
    for text in ax.texts:  # every name fits inside its cell
        extent = text.get_window_extent(renderer)
        assert extent.width < cell_w and extent.height < cell_h, text.get_text()


def test_permutation_figure_starts_at_zero_and_spreads_ties():
    changes = np.array([[0.6, 0.6, 0.61, 0.605, 0.3]] * 2)  # four points on top of each other
    peak = np.array([1.0, 1.0, 1.0, 1.0, 0.4])
    ax = permutation_figure(changes, peak).axes[0]
    assert ax.get_ylim()[0] == 0.0
    points = ax.collections[0].get_offsets()
    tied = points[:4, 0]
    assert len(set(tied)) == 4 and np.all(np.abs(tied - 1.0) <= TIE_SPREAD + 1e-12)
    assert points[4, 0] == 0.4  # a lone point stays where it is
    assert [t.get_text() for t in ax.texts] == ["n = 4"]  # the tie says how many it holds
    np.testing.assert_allclose(spread_ties(np.array([0.2, 0.5]), np.array([1.0, 2.0])), [0.2, 0.5])
    # 0.99 and 1.0 share a cell when their y are close too; the same x at another y does not
    near_one = tie_groups(np.array([0.99, 1.0, 0.5, 1.0]), np.array([1.0, 0.99, 1.0, 0.2]))
    assert [list(g) for g in near_one] == [[0, 1]]


# -- every figure readable at toy and MiniLM sizes; tokens drawn literally ---------------------


def readable(fig: Figure) -> None:
    """The figure's first draw (what a notebook shows) has no text under 7 pt, clipped or
    overlapping, and fits a slide (at most 2400 pixels on its long side)."""
    FigureCanvasAgg(fig)  # a Figure made without pyplot draws nothing on its own canvas
    assert_readable(fig, max_pixels=2400)


def dirichlet_weights(L: int, H: int, S: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.ones(S), size=(L, 1, H, S))


SENTENCE = ["[CLS]", "the", "cat", "sat", "on", "the", "mat", "because", "it", "was", "tired",
            ".", "[SEP]"]  # fmt: skip


def sentence_tokens(S: int) -> list[str]:
    return [SENTENCE[i % len(SENTENCE)] for i in range(S)]


@pytest.mark.parametrize(("L", "H"), [(1, 1), (2, 2), (3, 4), (6, 12)])
def test_head_statistics_figure_is_readable(L, H):
    stats = head_statistics(dirichlet_weights(L, H, 9))
    roles = head_roles(stats)
    roles[0] = HeadRole(0, 0, "positional (offset -12)", "")  # the longest short role name
    readable(head_statistics_figure(stats, roles))
    readable(head_statistics_figure(stats, quantities=["entropy", "self"], max_columns=3))


@pytest.mark.parametrize(("L", "H"), [(1, 2), (6, 12)])
def test_head_similarity_figure_is_readable(L, H):
    D = head_distances(dirichlet_weights(L, H, 8))
    readable(head_similarity_figure(D, classical_mds(D), head_names(L, H), n_heads=H))


@pytest.mark.parametrize("S", [4, 8, 13, 64, 200])
def test_relevance_maps_figure_is_readable(S):
    maps = {
        "raw attention, layer 2 (mean of heads)": np.eye(S),
        "attention_rollout(A)[-1, 0]": np.full((S, S), 1 / S),
        "attention_flow(A)[-1, 0]": np.eye(S)[::-1],
    }
    readable(relevance_maps_figure(maps, sentence_tokens(S)))
    readable(relevance_maps_figure(maps))  # positions as labels


@pytest.mark.parametrize("S", [4, 8, 13, 64])
def test_token_scores_figure_is_readable(S):
    rng = np.random.default_rng(S)
    scores = {
        "occlusion ([MASK])": rng.normal(size=S) * 0.1,
        "gradient × input": rng.normal(size=S) * 1e-5,  # long numbers: "-4.8e-06"
        "Integrated Gradients": rng.normal(size=S),
        "flat": np.ones(S),
    }
    fig = token_scores_figure(scores, sentence_tokens(S), highlight=1, title="why it → tired")
    readable(fig)
    ax = fig.axes[0]
    numbers = [t for t in ax.texts if t.get_text() in {f"{v:.2g}" for v in scores["flat"]}]
    assert numbers and all(t.get_fontsize() >= 7 for t in ax.texts)
    boxes = [t.get_text() for t in ax.texts if t.get_bbox_patch() is not None]
    assert boxes == sentence_tokens(S) * 4 if S <= 13 else len(boxes) == 4 * S


def test_token_scores_figure_refuses_non_finite_scores():
    with pytest.raises(ValueError, match=r"scores\['IG'\] must be finite"):
        token_scores_figure({"IG": np.array([1.0, np.nan])}, ["a", "b"])


@pytest.mark.parametrize("n_inputs", [4, 64])
def test_pruning_permutation_and_ranking_figures_are_readable(n_inputs):
    metric = np.linspace(1.0, 0.2, 73)
    curves = [PruningCurve([(0, 0)] * 72, np.arange(73), metric, 72, "gradient importance"),
              PruningCurve([(0, 0)] * 72, np.arange(73), metric[::-1], 72, "random")]  # fmt: skip
    readable(pruning_curves_figure(curves, "cosine with the full model's embedding"))
    rng = np.random.default_rng(1)
    peak = np.where(rng.random(n_inputs) < 0.5, 1.0, rng.random(n_inputs))  # many ties at 1
    changes = rng.random((20, n_inputs)) * np.where(peak == 1.0, 1.0, 0.5)
    readable(permutation_figure(changes, peak))
    rho = np.tanh(rng.normal(size=(n_inputs, 4, 4)))
    rho[:, 1, 2] = rho[:, 2, 1] = np.nan  # undefined for every input: "undef."
    fig = ranking_agreement_figure(RankingAgreement(("attention", "grad x input", "IG",
                                                     "occlusion"), rho))  # fmt: skip
    readable(fig)
    assert fig.axes[0].texts[6].get_text() == "undef."


@pytest.mark.parametrize("n", [2, 8])
def test_uniform_and_twin_figures_are_readable(n):
    names = ["histogram", "sort", "brackets", "reverse", "pointer", "shift", "twin", "copy"]
    readable(uniform_attention_figure(
        [UniformAttentionResult(names[k], 600, 1.0, 0.3) for k in range(n)]))  # fmt: skip
    readable(twin_seeds_figure([TwinSeedResult(k, 1.0, 0.5, 0.2, 0.9, 0.4, 0.7)
                                for k in range(n)]))  # fmt: skip


@pytest.mark.parametrize(("L", "H"), [(1, 1), (2, 2), (6, 12)])
def test_diagnostics_figure_is_readable_and_says_when_overfitting_was_not_checked(L, H):
    flags = (Flag(0, 0, "padding", 0.9, 0.5, ""), Flag(0, 0, "uniform", 0.97, 0.95, ""))
    zeros = np.zeros((L, H))
    note = "not enough data (n = 4 inputs + 4 held-out; a verdict needs at least 16 of each)"
    report = Report(flags, zeros, zeros, zeros, zeros, None, "excess JS distance",
                    DiagnosticThresholds(), 4, 4, overfit_note=note)  # fmt: skip
    fig = diagnostics_figure(report)
    readable(fig)
    assert fig.get_supxlabel().replace("\n", " ") == f"overfitting not checked: {note}"
    checked = replace(report, overfit=zeros, overfit_note="")
    assert diagnostics_figure(checked).get_supxlabel() == ""  # a verdict was made: no note


def test_diagnostics_figure_of_a_real_report_with_too_few_inputs():
    from minitransformer.config import EncoderConfig
    from minitransformer.interpret.diagnostics import diagnose
    from tests.conftest import make_encoder

    model = make_encoder(EncoderConfig(vocab_size=10, d_model=8, n_heads=2, max_len=8), seed=0)
    ids = np.random.default_rng(0).integers(1, 10, size=(4, 6))
    fig = diagnostics_figure(diagnose(model, ids, held_out=(ids[::-1], None)))
    readable(fig)
    assert "not enough data (n = 4 inputs + 4 held-out" in fig.get_supxlabel().replace("\n", " ")


HOSTILE = ["$x$", "a$b$c", "\udc80", r"$\frac{1}{$", "[CLS]"]


def test_tokens_are_drawn_literally_in_every_figure_that_shows_them():
    S = len(HOSTILE)
    expected = ["$x$", "a$b$c", "\\udc80", r"$\frac{1}{$", "[CLS]"]
    figures = [
        relevance_maps_figure({"$rollout$": np.eye(S)}, HOSTILE),
        token_scores_figure({"$IG$": np.arange(S, dtype=float)}, HOSTILE),
    ]
    for fig in figures:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")  # "$\frac{1}{$" as mathtext would fail here
        texts = [t for ax in fig.axes for t in ax.texts + ax.get_xticklabels()
                 + ax.get_yticklabels() + [ax.title]]  # fmt: skip
        for token in expected:
            drawn_as = [t for t in texts if t.get_text() == token]
            assert drawn_as, token
            assert not any(t.get_parse_math() for t in drawn_as), token
        titles = [t for t in texts if t.get_text().startswith("$") and "IG" in t.get_text()
                  or "rollout" in t.get_text()]  # fmt: skip
        assert titles and not any(t.get_parse_math() for t in titles)


# -- value-weighted attention beside the weights ----------------------------------------------


def value_weighted_inputs(S: int, pad: int = 0):
    from minitransformer.config import EncoderConfig
    from minitransformer.interpret import value_weighted_norms
    from tests.conftest import make_encoder

    config = EncoderConfig(vocab_size=20, d_model=12, n_heads=3, n_layers=2, d_ff=16,
                           max_len=256, positional="learned")  # fmt: skip
    model = make_encoder(config, seed=1)
    ids = np.random.default_rng(S).integers(1, 20, size=(2, S))
    mask = np.ones((2, S), bool)
    mask[1, S - pad :] = False
    _, trace = model.run_with_trace(ids, mask)
    return trace, value_weighted_norms(model, trace)


def test_value_weighted_figure_draws_the_weights_and_the_norms_of_one_head():
    trace, norms = value_weighted_inputs(6, pad=2)
    tokens = ["[CLS]", "it", "was", "$x$", "[PAD]", "[PAD]"]
    fig = value_weighted_figure(trace, norms, 1, 2, tokens, batch=1, query=1)
    readable(fig)
    weights_ax, norms_ax, weight_bars, norm_bars = (ax for ax in fig.axes if ax.get_title())
    real = slice(0, 4)  # the padding of batch row 1 is left out
    np.testing.assert_allclose(
        weights_ax.images[0].get_array(), trace["blocks.1.attn.weights"][1, 2][real, real]
    )
    np.testing.assert_allclose(norms_ax.images[0].get_array(), norms[1, 1, 2][real, real])
    assert weights_ax.images[0].get_clim() == (0.0, 1.0)
    assert norms_ax.images[0].get_clim() == (0.0, pytest.approx(norms[1, 1, 2][real, real].max()))
    assert [t.get_text() for t in weights_ax.get_xticklabels()] == tokens[:4]
    assert not any(t.get_parse_math() for t in weights_ax.get_xticklabels())
    assert weights_ax.get_title().startswith("attention weight α (layer 1, head 2)")
    # the query's row as bars, in key order, with its numbers written
    np.testing.assert_allclose([bar.get_width() for bar in weight_bars.patches],
                               trace["blocks.1.attn.weights"][1, 2, 1, :4], rtol=1e-6)  # fmt: skip
    np.testing.assert_allclose([bar.get_width() for bar in norm_bars.patches],
                               norms[1, 1, 2, 1, :4])  # fmt: skip
    assert [t.get_text() for t in norm_bars.texts] == [f"{v:.3f}" for v in norms[1, 1, 2, 1, :4]]
    assert weight_bars.get_title() == "“it” reads: weight α"
    frames = [p for p in weights_ax.patches if p.get_edgecolor()[0] > 0.5]
    assert len(frames) == 1 and frames[0].get_y() == 0.5  # row 1 framed
    cells = [t.get_text() for t in weights_ax.texts]
    assert len(cells) == 16  # 4 x 4 real cells, numbers written


@pytest.mark.parametrize("S", [4, 13, 64, 200])
def test_value_weighted_figure_is_readable_from_4_to_200_tokens(S):
    trace, norms = value_weighted_inputs(S)
    fig = value_weighted_figure(trace, norms, 0, 0, sentence_tokens(S), query=S // 2)
    readable(fig)
    bars = [ax for ax in fig.axes if ax.get_title().startswith("“")]
    assert len(bars[0].patches) == (S if S <= 24 else len(bars[0].get_yticklabels()))
    if S > 24:  # repeated words are told apart by their position
        assert all("(" in t.get_text() for t in bars[0].get_yticklabels())
    readable(value_weighted_figure(trace, norms, 1, 2))  # no query: the two maps only


def test_value_weighted_figure_refuses_bad_arguments():
    trace, norms = value_weighted_inputs(6, pad=2)
    with pytest.raises(ValueError, match=r"norms must have shape \(2, 2, 3, 6, 6\)"):
        value_weighted_figure(trace, norms[0], 0, 0)
    with pytest.raises(ValueError, match="query 5 is a padding position"):
        value_weighted_figure(trace, norms, 0, 0, batch=1, query=5)
    with pytest.raises(IndexError, match=r"head must be in \[0, 3\)"):
        value_weighted_figure(trace, norms, 0, 3)
