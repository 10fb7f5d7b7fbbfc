"""Figures of minitransformer.interpret: checks what was drawn (images, texts, lines, labels)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib.colors import to_rgba

from minitransformer.interpret.diagnostics import DiagnosticThresholds, Flag, Report
from minitransformer.interpret.explanation import (
    RankingAgreement,
    TwinSeedResult,
    UniformAttentionResult,
)
from minitransformer.interpret.importance import PruningCurve
from minitransformer.interpret.similarity import classical_mds, head_distances, head_names
from minitransformer.interpret.stats import head_roles, head_statistics
from viz.interpret import (
    FLAG_COLORS,
    STATISTIC_TITLES,
    TWIN_BARS,
    diagnostics_figure,
    head_similarity_figure,
    head_statistics_figure,
    permutation_figure,
    pruning_curves_figure,
    ranking_agreement_figure,
    relevance_maps_figure,
    short_role,
    token_scores_figure,
    twin_seeds_figure,
    uniform_attention_figure,
)

S = 5


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
    assert [t.get_text() for t in right.texts] == names
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
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
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
