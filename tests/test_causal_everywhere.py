"""The causal mask, everywhere: the trace, the backward pass, every figure, the explorer, the HTML
page and the interpretability functions, run on a causal model with a padded batch.

Each test asserts what a decoder needs: a future key (j > i) gets exactly 0 weight, exactly
0 gradient, is drawn as masked, and is said to be masked by the causal mask.
"""

from __future__ import annotations

import json
import re

import matplotlib
import numpy as np
import pytest
from matplotlib.collections import LineCollection

import viz
from minitransformer import Encoder, EncoderConfig
from minitransformer import interpret as I
from minitransformer.heads import Classifier
from minitransformer.testing.backward import numerical_gradient
from viz.html_export import unpack

matplotlib.use("Agg")

IDS = np.array([[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 0, 0]])
MASK = IDS != 0
S = IDS.shape[1]
FUTURE = ~np.tril(np.ones((S, S), dtype=bool))  # (S, S): key j after query i
TOKENS = [f"t{i}" for i in range(S)]


def config(**fields) -> EncoderConfig:
    base = dict(vocab_size=12, d_model=16, n_heads=2, n_layers=2, d_ff=32, max_len=8, causal=True)
    return EncoderConfig(**{**base, **fields})


@pytest.fixture(scope="module")
def model() -> Encoder:
    return Encoder(config(), seed=0)


@pytest.fixture(scope="module")
def trace(model):
    return model.run_with_trace(IDS, MASK)[1]


# ------------------------------------------------------------------------------ the trace


def test_the_trace_records_the_causal_mask_and_no_weight_on_the_future(trace):
    for l in range(2):
        mask = np.broadcast_to(trace[f"blocks.{l}.attn.mask"], (2, 2, S, S))
        assert not mask[..., FUTURE].any()
        weights = trace[f"blocks.{l}.attn.weights"]
        assert (weights[..., FUTURE] == 0).all()  # exactly 0, not just small
        assert (weights[1][..., 4:] == 0).all()  # nor on padding
        np.testing.assert_allclose(weights[0].sum(-1), 1, rtol=1e-6)


def test_an_earlier_output_does_not_depend_on_a_later_token(model):
    hidden = model([[1, 2, 3, 4, 5, 6]])
    changed = model([[1, 2, 3, 4, 5, 9]])
    np.testing.assert_array_equal(hidden[0, :5], changed[0, :5])
    assert not np.allclose(hidden[0, 5], changed[0, 5])


# ------------------------------------------------------------------------------ backward


def test_backward_of_a_causal_model_matches_finite_differences():
    model = Encoder(config(dtype="float64", n_layers=1), seed=1)
    rng = np.random.default_rng(0)
    R = rng.normal(size=(2, S, 16))
    _, trace = model.run_with_trace(IDS, MASK)
    grads = model.backward(trace, R, IDS)
    W = model.params["blocks.0.attn.W_Q"]
    numeric = numerical_gradient(lambda W_Q: _with(model, W_Q), W, R)
    np.testing.assert_allclose(grads.params["blocks.0.attn.W_Q"], numeric, atol=1e-7)
    for weights_grad in grads.attn_weights:  # dL/dweights reaches future keys only as zeros...
        assert weights_grad.shape == (2, 2, S, S)
    # ... and no future token moves an earlier position's output: the gradient of position
    # 2's output with respect to the embeddings of positions 3.. is exactly 0
    only_position_2 = np.zeros_like(R)
    only_position_2[:, 2] = R[:, 2]
    g = model.backward(trace, only_position_2, IDS).embeddings
    assert (g[:, 3:] == 0).all() and np.abs(g[:, :3]).max() > 0


def _with(model: Encoder, W_Q: np.ndarray) -> np.ndarray:
    params = {**model.params, "blocks.0.attn.W_Q": W_Q}
    return Encoder(model.config, params=params)(IDS, MASK)


# ------------------------------------------------------------------------------- figures


def test_heatmap_and_heads_draw_the_future_as_masked(trace):
    fig = viz.attention_heatmap(trace, 0, 1, TOKENS)
    drawn = np.ma.getmaskarray(fig.axes[0].images[0].get_array())
    np.testing.assert_array_equal(drawn, FUTURE)
    fig = viz.attention_heads(trace, 1, tokens=TOKENS)
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 2
    for image in images:
        assert np.ma.getmaskarray(image.get_array())[FUTURE].all()


def test_model_view_masks_the_future_in_every_map(trace):
    fig = viz.model_view(trace, TOKENS)
    assert len(fig.axes[0].images) == 4  # one thumbnail per head, in one axes
    for image in fig.axes[0].images:
        np.testing.assert_array_equal(np.ma.getmaskarray(image.get_array()), FUTURE)


def test_head_view_draws_no_line_to_a_later_key(trace):
    fig = viz.head_view(trace, 0, tokens=TOKENS)
    lines = [c for c in fig.axes[0].collections if isinstance(c, LineCollection)]
    assert len(lines) == 2
    for collection in lines:
        segments = collection.get_segments()
        assert len(segments) == S * (S + 1) // 2  # every query, every key up to it
        for (_, y_query), (_, y_key) in segments:
            assert y_key <= y_query  # rows counted from the top: the key is not later


def test_step_frames_say_the_mask_is_causal(model, trace):
    frames = viz.attention_step_frames(trace, 0, 0, TOKENS, model.params)
    texts = [
        " ".join(t.get_text() for t in frame.findobj(matplotlib.text.Text)) for frame in frames
    ]
    masked = [t for t in texts if "+ mask" in t]
    assert masked and all("causal mask" in t for t in masked)
    assert any("later keys get −∞" in t for t in masked)
    fig = viz.attention_steps(trace, 0, 0, TOKENS, model.params)
    assert "causal: each query's later keys" in fig.get_suptitle()


def test_query_breakdown_marks_later_keys_masked(trace):
    fig = viz.query_breakdown(trace, 0, 1, 2, TOKENS)
    softmax = [ax for ax in fig.axes if "weights" in ax.get_title()]
    assert softmax
    assert [t.get_text() for t in softmax[0].texts].count("masked") == S - 3  # keys 3, 4, 5


# ---------------------------------------------------------------- explorer and HTML page


def test_explorer_views_draw_a_causal_model(model):
    explorer = viz.explore(model=model, token_ids=IDS[0], tokens=TOKENS)
    for view in viz.explorer.VIEWS:
        explorer.view.value = view
        assert explorer.figure is not None
    explorer.view.value = "heatmap"
    image = [ax for ax in explorer.figure.axes if ax.images][0].images[0]
    np.testing.assert_array_equal(np.ma.getmaskarray(image.get_array()), FUTURE)
    explorer.temperature.value = 2.0  # a what-if re-runs the model: still causal
    assert (explorer.trace["blocks.0.attn.weights"][..., FUTURE] == 0).all()


def test_html_page_keeps_the_causal_mask(trace):
    page = viz.to_html(trace, TOKENS, batch=1)  # the padded sequence: 4 real tokens
    data = json.loads(
        re.search(r'id="attention-data">(.*?)</script>', page, re.S).group(1)  # type: ignore[union-attr]
    )
    mask = unpack(data["arrays"])["mask"]  # (layers, 4, 4) for the 4 real tokens
    np.testing.assert_array_equal(mask, np.tile(np.tril(np.ones((4, 4), np.uint8)), (2, 1, 1)))


# -------------------------------------------------------------------------- interpret


def test_rollout_and_flow_never_reach_forward(trace):
    A = I.attention_weights(trace)
    rollout = I.attention_rollout(A)
    flow = I.attention_flow(A, MASK)
    assert (rollout[..., FUTURE] == 0).all()
    assert (flow[..., FUTURE] == 0).all()


def test_uniform_attention_of_a_causal_model_is_flagged_uniform():
    """Query i of a causal model sees i + 1 keys: its uniform entropy is log(i + 1), not log S.

    A head with W_Q = W_K = 0 attends uniformly to what it may see; measured against log S
    it looked sharper than uniform (about 70 % of it here) and was not flagged.
    """
    model = Encoder(config(), seed=0)
    for l in range(2):
        for name in ("W_Q", "W_K", "b_Q", "b_K"):
            model.params[f"blocks.{l}.attn.{name}"][...] = 0
    report = I.diagnose(model, IDS, MASK)
    np.testing.assert_allclose(report.uniformity, 1.0, rtol=1e-5)
    assert {(f.layer, f.head) for f in report.flags if f.kind == "uniform"} == {
        (l, h) for l in range(2) for h in range(2)
    }
    stats = I.head_statistics(I.attention_weights(model.run_with_trace(IDS, MASK)[1]), IDS, MASK)
    assert (stats.entropy < 0.8 * stats.uniform_entropy).all()  # without causal=: log n


def test_value_weighted_norms_and_ablation_keep_the_future_at_zero(model, trace):
    norms = I.value_weighted_norms(model, trace)
    assert (norms[..., FUTURE] == 0).all()
    _, ablated = model.run_with_trace(
        IDS, MASK, head_mask=I.head_mask_without(model.config, [(0, 1)])
    )
    assert (ablated["blocks.1.attn.weights"][..., FUTURE] == 0).all()
    changes = I.attention_permutation_effect(
        model, IDS, lambda h: h[:, 0].sum(-1), MASK, n_permutations=3
    )
    assert np.allclose(changes, 0), "shuffling within the visible keys: position 0 sees only itself"


def test_gradient_x_input_gives_no_relevance_to_later_tokens(model):
    head = Classifier(16, 3, pooling="first", seed=0)  # reads position 0, which sees only itself
    scores = I.gradient_x_input(model, IDS[:1], I.class_logit(head, 1), MASK[:1])
    assert (scores[1:] == 0).all() and scores[0] != 0
