"""Query-key space: the normalisation keeps attention, PCA is orthonormal, the plot shows it."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from conftest import make_encoder
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection

from minitransformer.config import EncoderConfig
from minitransformer.functional import softmax
from minitransformer.interpret.qk_space import normalize_qk, qk_projection
from viz.qk_space import qk_space

LENGTHS = [6, 4, 5]


@pytest.fixture(scope="module")
def trace():
    model = make_encoder(EncoderConfig(n_layers=2, n_heads=4, d_model=16), seed=11)
    ids = np.arange(1, 19).reshape(3, 6)
    mask = np.arange(6)[None, :] < np.array(LENGTHS)[:, None]
    return model.run_with_trace(ids, mask=mask)[1]


def test_normalisation_leaves_each_querys_attention_unchanged():
    rng = np.random.default_rng(0)
    q = rng.standard_normal((7, 5)) + 3.0
    k = 4.0 * rng.standard_normal((9, 5)) - 1.0
    qn, kn = normalize_qk(q, k)
    before, after = q @ k.T, qn @ kn.T
    # Each query's scores move by one constant (translation), so its softmax is the same.
    shift = after - before
    np.testing.assert_allclose(shift, shift[:, :1].repeat(9, axis=1), atol=1e-9)
    np.testing.assert_allclose(softmax(after), softmax(before), atol=1e-12)
    assert (np.argsort(after, axis=1) == np.argsort(before, axis=1)).all()
    # Translating alone gives the keys the queries' centroid; scaling equalises mean norms.
    qt, kt = normalize_qk(q, k, scale=False)
    np.testing.assert_array_equal(qt, q)
    np.testing.assert_allclose(kt.mean(0), q.mean(0), atol=1e-12)
    assert np.linalg.norm(qn, axis=1).mean() == pytest.approx(np.linalg.norm(kn, axis=1).mean())
    # Scaling alone keeps every dot product.
    qs, ks = normalize_qk(q, k, translate=False)
    np.testing.assert_allclose(qs @ ks.T, before, rtol=1e-12)
    q0, k0 = normalize_qk(q, k, translate=False, scale=False)
    np.testing.assert_array_equal(k0, k)


def test_projection_axes_orthonormal_and_coordinates_from_centred_points():
    rng = np.random.default_rng(1)
    q, k = rng.standard_normal((10, 6)), rng.standard_normal((8, 6)) * 3
    proj = qk_projection(q, k)
    np.testing.assert_allclose(proj.axes @ proj.axes.T, np.eye(2), atol=1e-12)
    qn, kn = normalize_qk(q, k)
    points = np.vstack([qn, kn])
    centred = points - points.mean(0)
    np.testing.assert_allclose(np.vstack([proj.queries, proj.keys]), centred @ proj.axes.T)
    # The first axis carries the most variance; explained fractions are ordered in (0, 1].
    assert 1 >= proj.explained[0] >= proj.explained[1] > 0
    np.testing.assert_allclose(proj.explained[0], np.var(centred @ proj.axes[0]) * 18 /
                               (centred**2).sum())  # fmt: skip
    with pytest.raises(ValueError, match="same d_head"):
        qk_projection(q, k[:, :5])


def real_rows(trace, layer, head, part):
    rows = [trace[f"blocks.{layer}.attn.{part}"][b, head, :n] for b, n in enumerate(LENGTHS)]
    return np.vstack(rows)


def test_scatter_shows_the_projection_of_real_tokens_of_every_sequence(trace):
    fig = qk_space(trace, 1, 3)
    ax = fig.axes[0]
    queries, keys = ax.collections[1], ax.collections[2]
    proj = qk_projection(real_rows(trace, 1, 3, "q"), real_rows(trace, 1, 3, "k"))
    assert len(proj.queries) == sum(LENGTHS), "padding is left out"
    np.testing.assert_allclose(queries.get_offsets(), proj.queries)
    np.testing.assert_allclose(keys.get_offsets(), proj.keys)
    assert queries.get_label() == "query" and keys.get_label() == "key"
    assert "Layer 1, head 3" in ax.get_title() and "3 sequences" in ax.get_title()
    assert ax.get_xlabel().startswith("PC 1 (")


def test_lines_join_each_query_to_its_top_keys_with_alpha_weight(trace):
    fig = qk_space(trace, 0, 2, tokens=list("abcd") + ["x", "y"], batch=1, top_k=2)
    ax = fig.axes[0]
    (lines,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    weights = trace["blocks.0.attn.weights"][1, 2, :4, :4]  # 4 real tokens in sequence 1
    proj = qk_projection(trace["blocks.0.attn.q"][1, 2, :4], trace["blocks.0.attn.k"][1, 2, :4])
    alphas = lines.get_colors()[:, 3]
    segments = lines.get_segments()
    assert len(segments) == 4 * 2
    for i in range(4):
        top = np.argsort(-weights[i])[:2]
        np.testing.assert_allclose(alphas[2 * i : 2 * i + 2], weights[i, top], rtol=1e-6)
        for n, j in enumerate(top):
            np.testing.assert_allclose(segments[2 * i + n], [proj.queries[i], proj.keys[j]])
    texts = [t.get_text() for t in ax.texts]
    assert texts == list("abcd") * 2, "queries then keys, padding tokens not labelled"
    no_lines = qk_space(trace, 0, 2, batch=1, top_k=0)
    assert not [c for c in no_lines.axes[0].collections if isinstance(c, LineCollection)]


def test_clear_errors(trace):
    with pytest.raises(IndexError, match="head must be"):
        qk_space(trace, 0, 9)
    with pytest.raises(IndexError, match="batch"):
        qk_space(trace, 0, 0, batch=3)
    with pytest.raises(ValueError, match="tokens is one sequence but 3 sequences"):
        qk_space(trace, 0, 0, tokens=list("abcdef"))
    with pytest.raises(ValueError, match=r"tokens\[1\] has 2 entries"):
        qk_space(trace, 0, 0, tokens=[list("abcdef"), ["a", "b"], list("abcdef")])
    with pytest.raises(ValueError, match="top_k"):
        qk_space(trace, 0, 0, top_k=-1)
    with pytest.raises(KeyError, match="blocks.0.attn.k"):
        qk_space(trace.filter(["*.attn.q", "*.attn.weights", "*.attn.mask"]), 0, 0)


def test_a_repeated_token_is_labelled_with_its_position(trace):
    fig = qk_space(trace, 0, 2, tokens=["the", "cat", "the", "end", "x", "y"], batch=1)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["the (0)", "cat", "the (2)", "end"] * 2


def test_update_in_place_refuses_another_number_of_points(trace):
    from viz.qk_space import update_qk_space

    fig = qk_space(trace, 0, 0, batch=0)
    update_qk_space(fig, trace, 1, 1, batch=0)  # same sequence: moved in place
    fresh = qk_space(trace, 1, 1, batch=0)
    keys, new_keys = fig.axes[0].collections[-1], fresh.axes[0].collections[-1]
    np.testing.assert_allclose(keys.get_offsets(), new_keys.get_offsets())
    with pytest.raises(ValueError, match="draw it anew"):
        update_qk_space(fig, trace, 1, 1)  # every sequence of the batch: more points


def test_padding_points_are_left_out_by_the_traces_padding_mask():
    from viz_inputs import REAL, padded_trace

    trace = padded_trace()
    fig = qk_space(trace, 0, 1, batch=1)
    queries, keys = [c for c in fig.axes[0].collections if not isinstance(c, LineCollection)]
    assert len(queries.get_offsets()) == len(keys.get_offsets()) == REAL
    proj = qk_projection(
        trace["blocks.0.attn.q"][1, 1, :REAL], trace["blocks.0.attn.k"][1, 1, :REAL]
    )
    np.testing.assert_allclose(queries.get_offsets(), proj.queries)
    both = qk_space(trace, 0, 1)  # every sequence: 8 + 4 real tokens
    assert "12 + 12 from 2 sequences" in both.axes[0].get_title()


def test_labels_never_overlap_and_stay_inside_the_axes():
    """A 13-token sentence put "was" on top of "tired"; now each label finds a free place."""
    from readability import drawn_texts
    from viz_inputs import long_trace, word_tokens

    trace = long_trace(40, n_heads=2, n_layers=1)
    fig = qk_space(trace, 0, 1, word_tokens(40))
    texts = [t for t in drawn_texts(fig) if t.size == 8]  # the point labels
    assert len(texts) >= 40, "most of the 80 points keep their label"
    for i, a in enumerate(texts):
        for b in texts[i + 1 :]:
            assert not a.box.overlaps(b.box) or (
                min(a.box.x1, b.box.x1) - max(a.box.x0, b.box.x0) <= 1
                or min(a.box.y1, b.box.y1) - max(a.box.y0, b.box.y0) <= 1
            ), f"{a.text!r} overlaps {b.text!r}"
        assert fig.axes[0].bbox.containsx(a.box.x0) and fig.axes[0].bbox.containsx(a.box.x1)


def test_the_legend_is_under_the_plane_not_on_it(trace):
    # never over a point or a label, wherever they fall (and no "best" search of every
    # corner against every point at each redraw)
    fig = qk_space(trace, 0, 0, top_k=2)
    ax = fig.axes[0]
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [
        "query",
        "key",
        "top 2 keys per query (opacity = weight)",
    ]
    box = legend.get_window_extent(renderer)
    assert box.y1 <= ax.get_window_extent(renderer).y0, "below the plane"
    assert box.y1 <= ax.xaxis.label.get_window_extent(renderer).y0, "below its axis label"
    assert box.y0 >= 0 and box.x0 >= 0 and box.x1 <= fig.bbox.width, "inside the figure"
