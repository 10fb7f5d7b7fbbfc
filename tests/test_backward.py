"""Gradient checks of the hand-written backward pass.

Two independent references:

* central finite differences in float64, ``(L(theta + h) - L(theta - h)) / 2h``, for every
  ``*_backward`` function and for whole small encoders;
* PyTorch autograd on identical weights: an encoder written from ``torch.nn.functional``
  building blocks, and ``torch.nn.TransformerEncoderLayer`` for a single block.

The loss is always a random linear functional ``L = sum(output * R)`` so that every output
entry matters; its gradient with respect to the output is ``R``.

Errors are measured per tensor as ``rel_err(a, n) = ||a - n|| / max(||a||, ||n||, 1e-8)``
(Euclidean norms over the checked entries); run ``pytest -s`` to see them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pytest

from minitransformer import Encoder, EncoderConfig, Trace
from minitransformer.attention import (
    attention_scores,
    attention_scores_backward,
    merge_heads,
    merge_heads_backward,
    scaled_dot_product_attention,
    scaled_dot_product_attention_backward,
    split_heads,
    split_heads_backward,
)
from minitransformer.backprop import Gradients, backward
from minitransformer.functional import (
    dropout,
    dropout_backward,
    embedding_backward,
    gelu,
    gelu_backward,
    gelu_tanh,
    gelu_tanh_backward,
    layer_norm,
    layer_norm_backward,
    linear,
    linear_backward,
    masked_softmax,
    masked_softmax_backward,
    relu,
    relu_backward,
    softmax,
    softmax_backward,
)
from minitransformer.params import param_shapes
from minitransformer.positional import (
    position_embedding_backward,
    sinusoidal_positional_encoding,
)
from minitransformer.training import value_and_grad

FD_TOL = 1e-6  # finite differences against the analytic gradient
TORCH_TOL = 1e-8  # PyTorch autograd against the analytic gradient, both float64
STEP = 1e-6  # finite-difference step


def rel_err(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """``||a - n|| / max(||a||, ||n||, 1e-8)`` over all entries."""
    a, n = np.ravel(analytic), np.ravel(numeric)
    scale = max(np.linalg.norm(a), np.linalg.norm(n), 1e-8)
    return float(np.linalg.norm(a - n) / scale)


def assert_close(label: str, analytic: np.ndarray, numeric: np.ndarray, tol: float) -> None:
    err = rel_err(analytic, numeric)
    print(f"{label}: rel err {err:.1e}")
    assert err <= tol, f"{label}: relative error {err:.2e} > {tol:.0e}"


def assert_param_close(label: str, name: str, analytic, reference, tol: float) -> None:
    """:func:`assert_close`, except for the key bias, whose gradient is exactly zero.

    Adding ``b_K`` to every key adds ``q_i . b_K`` to the whole row ``i`` of scores, which the
    softmax ignores: ``dL/db_K = 0``. Both sides are then rounding noise (around 1e-15
    analytically, 1e-9 by finite differences), whose relative error means nothing.
    """
    if name.endswith(".attn.b_K"):
        worst = max(np.abs(analytic).max(), np.abs(reference).max())
        print(f"{label}: max |gradient| {worst:.1e} (exactly 0 in exact arithmetic)")
        assert worst <= 1e-8, f"{label}: the key bias gradient should be 0, got {worst:.2e}"
    else:
        assert_close(label, analytic, reference, tol)


def numerical_gradient(
    loss: Callable[[], float], x: np.ndarray, indices: np.ndarray | None = None
) -> np.ndarray:
    """Central differences of ``loss()`` with respect to entries of ``x``, changed in place.

    ``indices`` are flat indices into ``x`` (default: all); returns one derivative per index.
    """
    flat = x.reshape(-1)  # a view: writing to it changes x
    assert np.shares_memory(flat, x)
    indices = np.arange(x.size) if indices is None else indices
    grad = np.empty(len(indices))
    for j, i in enumerate(indices):
        saved = flat[i]
        flat[i] = saved + STEP
        up = loss()
        flat[i] = saved - STEP
        down = loss()
        flat[i] = saved
        grad[j] = (up - down) / (2 * STEP)
    return grad


def check_op(label: str, forward: Callable[[], np.ndarray], grads: dict, R: np.ndarray) -> None:
    """Check each analytic gradient in ``grads`` (input array -> dL/dinput) for L = sum(f * R)."""
    for name, (x, analytic) in grads.items():
        numeric = numerical_gradient(lambda: float((forward() * R).sum()), x)
        assert_close(f"{label} d/d{name}", analytic, numeric.reshape(x.shape), FD_TOL)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


# ------------------------------------------------------------------------- the ops


def test_softmax_backward(rng):
    x = rng.standard_normal((3, 4, 5))
    for axis in (-1, 1):
        R = rng.standard_normal(x.shape)
        analytic = softmax_backward(R, softmax(x, axis), axis)
        forward = partial(softmax, x, axis=axis)
        check_op(f"softmax axis={axis}", forward, {"x": (x, analytic)}, R)


def test_masked_softmax_backward_zero_where_masked(rng):
    scores = rng.standard_normal((2, 3, 4, 5))
    mask = rng.random((2, 1, 4, 5)) < 0.6
    mask[0, 0, 0] = False  # a fully masked row
    mask[1, 0, 2, 0] = True  # and every row of the second sequence keeps at least one key
    R = rng.standard_normal(scores.shape)
    weights = masked_softmax(scores, mask)
    analytic = masked_softmax_backward(R, weights)
    check_op("masked_softmax", lambda: masked_softmax(scores, mask), {"s": (scores, analytic)}, R)
    masked = np.broadcast_to(~mask, scores.shape)
    assert np.all(analytic[masked] == 0)
    assert np.all(analytic[0, :, 0] == 0)  # the fully masked row


def test_layer_norm_backward(rng):
    x = rng.standard_normal((2, 3, 6)) * 2 + 1
    gamma, beta = rng.standard_normal(6), rng.standard_normal(6)
    R = rng.standard_normal(x.shape)
    recorded = {}
    layer_norm(x, gamma, beta, 1e-5, record=lambda name, value: recorded.setdefault(name, value))
    normed, std = recorded["ln.normed"], recorded["ln.std"]
    grad_x, grad_gamma, grad_beta = layer_norm_backward(R, normed, std, gamma)
    assert grad_gamma.shape == grad_beta.shape == (6,)
    check_op(
        "layer_norm",
        lambda: layer_norm(x, gamma, beta, 1e-5),
        {"x": (x, grad_x), "gamma": (gamma, grad_gamma), "beta": (beta, grad_beta)},
        R,
    )


@pytest.mark.parametrize(
    "f, f_backward",
    [(relu, relu_backward), (gelu, gelu_backward), (gelu_tanh, gelu_tanh_backward)],
    ids=["relu", "gelu", "gelu_tanh"],
)
def test_activation_backward(rng, f, f_backward):
    u = rng.standard_normal((4, 7)) * 3
    x = np.sign(u) * (0.1 + np.abs(u))  # at least 0.1 from relu's kink at 0
    R = rng.standard_normal(x.shape)
    check_op(f.__name__, lambda: f(x), {"x": (x, f_backward(R, x))}, R)


def test_linear_backward(rng):
    x, W, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5)), rng.standard_normal(5)
    R = rng.standard_normal((2, 3, 5))
    grad_x, grad_W, grad_b = linear_backward(R, x, W)
    check_op(
        "linear",
        lambda: linear(x, W, b),
        {"x": (x, grad_x), "W": (W, grad_W), "b": (b, grad_b)},
        R,
    )


def test_dropout_backward_uses_the_mask(rng):
    x = rng.standard_normal((3, 8))
    p = 0.4
    _, keep = dropout(x, p, np.random.default_rng(1))
    R = rng.standard_normal(x.shape)
    analytic = dropout_backward(R, keep, p)
    # the same masks again: a generator with the same seed draws them independently of x
    check_op("dropout", lambda: dropout(x, p, np.random.default_rng(1))[0], {"x": (x, analytic)}, R)
    assert np.all(analytic[~keep] == 0)


def test_split_and_merge_heads_backward(rng):
    x = rng.standard_normal((2, 3, 8))
    R = rng.standard_normal((2, 4, 3, 2))
    check_op("split_heads", lambda: split_heads(x, 4), {"x": (x, split_heads_backward(R))}, R)
    z = rng.standard_normal((2, 4, 3, 2))
    R2 = rng.standard_normal((2, 3, 8))
    check_op("merge_heads", lambda: merge_heads(z), {"z": (z, merge_heads_backward(R2, 4))}, R2)


def test_attention_scores_backward(rng):
    q, k = rng.standard_normal((2, 2, 3, 4)), rng.standard_normal((2, 2, 5, 4))
    R = rng.standard_normal((2, 2, 3, 5))
    grad_q, grad_k = attention_scores_backward(R, q, k)
    check_op(
        "attention_scores", lambda: attention_scores(q, k), {"q": (q, grad_q), "k": (k, grad_k)}, R
    )


def test_scaled_dot_product_attention_backward(rng):
    q, k, v = (rng.standard_normal((2, 2, 4, 3)) for _ in range(3))
    mask = rng.random((2, 1, 4, 4)) < 0.7
    mask[0, 0, 1] = False  # a query with nothing to attend to
    R = rng.standard_normal((2, 2, 4, 3))
    _, weights, _ = scaled_dot_product_attention(q, k, v, mask)
    grad_q, grad_k, grad_v = scaled_dot_product_attention_backward(R, q, k, v, weights)
    check_op(
        "sdpa",
        lambda: scaled_dot_product_attention(q, k, v, mask)[0],
        {"q": (q, grad_q), "k": (k, grad_k), "v": (v, grad_v)},
        R,
    )
    assert np.all(grad_q[0, :, 1] == 0)


def test_embedding_backward_adds_repeated_ids(rng):
    W = rng.standard_normal((6, 4))
    ids = np.array([[1, 3, 1, 1], [0, 3, 5, 1]])  # repeated ids; 2 and 4 unused
    R = rng.standard_normal((2, 4, 4))
    analytic = embedding_backward(R, ids, 6)
    check_op("embedding", lambda: W[ids], {"W": (W, analytic)}, R)
    assert np.all(analytic[[2, 4]] == 0)


def test_position_embedding_backward(rng):
    W_pos = rng.standard_normal((7, 4))
    tokens = rng.standard_normal((3, 5, 4))
    R = rng.standard_normal(tokens.shape)
    analytic = position_embedding_backward(R, 7)
    check_op("positions", lambda: tokens + W_pos[:5], {"W_pos": (W_pos, analytic)}, R)
    assert np.all(analytic[5:] == 0)


# ----------------------------------------------------------------- whole encoders

TINY: dict[str, Any] = dict(
    vocab_size=13, d_model=8, n_heads=2, n_layers=2, d_ff=12, max_len=7, dtype="float64"
)

# Between them: post/pre norm, every activation, every positional option, token types with
# the embedding LayerNorm, padding, causal (with a query whose only key is padding), dropout,
# and scores without the 1/sqrt(Dh) scaling.
CASES: dict[str, tuple[dict[str, Any], str | None, bool]] = {
    "post-relu-sinusoidal-padding": (dict(norm="post", activation="relu"), "padding", False),
    "post-relu-unscaled-scores": (dict(scale_scores=False), None, False),
    "pre-gelu-learned-causal-padding": (
        dict(norm="pre", activation="gelu", positional="learned", causal=True),
        "left-padding",
        False,
    ),
    "post-gelu_tanh-none-types-embedln": (
        dict(positional="none", activation="gelu_tanh", type_vocab_size=3, embed_layer_norm=True),
        None,
        False,
    ),
    "pre-relu-learned-types-embedln": (
        dict(norm="pre", positional="learned", type_vocab_size=2, embed_layer_norm=True),
        "padding",
        False,
    ),
    "post-gelu-learned-types-embedln-dropout": (
        dict(
            activation="gelu",
            positional="learned",
            type_vocab_size=2,
            embed_layer_norm=True,
            dropout=0.3,
        ),
        "padding",
        True,
    ),
    "pre-gelu_tanh-sinusoidal-causal-dropout": (
        dict(norm="pre", activation="gelu_tanh", causal=True, dropout=0.3),
        None,
        True,
    ),
}


def random_params(config: EncoderConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Parameters with no special values: random biases and shifts, gains near 1."""
    params = {}
    for name, shape in param_shapes(config).items():
        if name.endswith("gamma"):
            params[name] = 1 + 0.3 * rng.standard_normal(shape)
        elif len(shape) == 2 and not name.startswith("embed."):
            params[name] = rng.standard_normal(shape) / np.sqrt(shape[0])
        else:
            params[name] = rng.standard_normal(shape) * 0.5
    return params


def make_case(name: str):
    """A model and the inputs of one case. B = 2, S = 5, token ids all distinct."""
    overrides, masking, training = CASES[name]
    config = EncoderConfig(**TINY, **overrides)
    rng = np.random.default_rng(sum(map(ord, name)))
    model = Encoder(config, params=random_params(config, rng))
    ids = rng.permutation(config.vocab_size)[:10].reshape(2, 5)
    mask = {
        None: None,
        "padding": np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]),
        "left-padding": np.array([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]]),  # causal: query 0 sees none
    }[masking]
    types = rng.integers(0, config.type_vocab_size, ids.shape) if config.type_vocab_size else None
    R = rng.standard_normal((2, 5, config.d_model))
    return model, ids, mask, types, training, R


def run(model, ids, mask, types, training):
    """The forward pass of a case (training: the same dropout masks on every call)."""
    return model.run_with_trace(
        ids, mask, token_type_ids=types, training=training, rng=np.random.default_rng(5)
    )


@pytest.mark.parametrize("case", list(CASES))
def test_encoder_gradients_match_finite_differences(case):
    model, ids, mask, types, training, R = make_case(case)
    hidden, trace = run(model, ids, mask, types, training)
    grads = backward(model, trace, R)

    def loss() -> float:
        return float((run(model, ids, mask, types, training)[0] * R).sum())

    pick = np.random.default_rng(1)
    for name, value in model.params.items():
        # every entry of a small tensor, 24 random entries of a larger one
        indices = pick.choice(value.size, 24, replace=False) if value.size > 24 else None
        numeric = numerical_gradient(loss, value, indices)
        analytic = grads.params[name].reshape(-1)
        analytic = analytic if indices is None else analytic[indices]
        assert_param_close(f"{case} {name}", name, analytic, numeric, FD_TOL)

    # Token ids are distinct, so W_E[ids[b, s]] feeds embed.sum[b, s] alone: differentiating
    # with respect to that row is differentiating with respect to embed.sum[b, s].
    W_E = model.params["embed.W_E"]
    numeric_rows = numerical_gradient(loss, W_E).reshape(W_E.shape)
    assert_close(f"{case} embeddings", grads.embeddings, numeric_rows[ids], FD_TOL)


def test_gradients_have_the_names_shapes_and_dtype_of_the_params():
    config = EncoderConfig(**{**TINY, "dtype": "float32"}, positional="learned", norm="pre")
    model = Encoder(config, seed=3)
    ids = [[1, 2, 3, 1]]
    hidden, trace = model.run_with_trace(ids)
    grads = backward(model, trace, np.ones_like(hidden))
    assert isinstance(grads, Gradients)
    assert list(grads.params) == list(model.params)
    for name, value in model.params.items():
        assert grads.params[name].shape == value.shape, name
        assert grads.params[name].dtype == np.float32, name
    assert grads.embeddings.shape == hidden.shape
    assert np.all(grads.params["embed.W_pos"][4:] == 0)  # positions 4.. were not used


def test_value_and_grad_agrees_with_backward():
    model, ids, mask, types, training, R = make_case("pre-relu-learned-types-embedln")
    hidden, trace = run(model, ids, mask, types, training)
    expected = backward(model, trace, R)
    value, grads = value_and_grad(
        model, lambda h: (float((h * R).sum()), R), ids, mask, token_type_ids=types
    )
    assert value == pytest.approx(float((hidden * R).sum()))
    np.testing.assert_array_equal(grads.embeddings, expected.embeddings)
    for name in model.params:
        np.testing.assert_array_equal(grads.params[name], expected.params[name])


def test_backward_rejects_a_partial_trace_naming_what_is_missing():
    model = Encoder(EncoderConfig(**TINY))
    ids = [[1, 2, 3]]
    hidden, trace = model.run_with_trace(ids, keep=["embed.*", "blocks.*"])
    with pytest.raises(ValueError, match=r"full trace.*keep=.*blocks\.1\.ln2\.normed") as info:
        backward(model, trace.filter("embed.*"), np.ones_like(hidden))
    assert "embed.tokens" not in str(info.value)


def test_backward_reads_the_inputs_of_the_pass_from_the_trace():
    """No token ids, token types or head mask are passed again: the trace keeps them."""
    model = Encoder(EncoderConfig(**{**TINY, "dtype": "float64"}, type_vocab_size=2), seed=2)
    ids, types, head_mask = [[1, 2, 3]], [[0, 1, 1]], [[1.0, 0.5], [0.0, 2.0]]
    R = np.random.default_rng(0).standard_normal((1, 3, 8))

    def loss(type_rows: np.ndarray) -> float:
        params = {**model.params, "embed.W_type": type_rows}
        hidden = Encoder(model.config, params=params)(
            ids, token_type_ids=types, head_mask=head_mask
        )
        return float((hidden * R).sum())

    _, trace = model.run_with_trace(ids, token_type_ids=types, head_mask=head_mask)
    grads = backward(model, trace, R)
    numeric = numerical_gradient(
        lambda: loss(model.params["embed.W_type"]), model.params["embed.W_type"]
    )
    assert_close("W_type", grads.params["embed.W_type"], numeric.reshape(2, 8), FD_TOL)


def test_backward_rejects_a_trace_that_does_not_match_the_model_or_the_gradient():
    model = Encoder(EncoderConfig(**TINY))
    hidden, trace = model.run_with_trace([[1, 2, 3]])
    g = np.ones_like(hidden)
    with pytest.raises(ValueError, match=r"grad_hidden must have .* \(1, 3, 8\), got \(3, 8\)"):
        backward(model, trace, g[0])
    other = Encoder(EncoderConfig(**{**TINY, "norm": "pre"}))
    with pytest.raises(ValueError, match="trace was recorded by a model with"):
        backward(other, trace, g)
    changed = Encoder(model.config, seed=1)  # the same config, other parameters
    with pytest.raises(ValueError, match="parameters changed since the trace was recorded"):
        backward(changed, trace, g)
    typed = Encoder(EncoderConfig(**TINY, type_vocab_size=2))
    _, typed_trace = typed.run_with_trace(
        [[1, 2, 3]], token_type_ids=[[0, 0, 1]], patch={"embed.token_types": np.zeros((1, 3, 8))}
    )
    with pytest.raises(ValueError, match="embed.token_types are not those of its token_type_ids"):
        backward(typed, typed_trace, g)
    made_by_hand = Trace(dict(trace), trace.config)
    with pytest.raises(ValueError, match="does not know its token ids"):
        backward(model, made_by_hand, g)


# --------------------------------------------------------------- against PyTorch


def torch_encoder(torch, config, P, ids, mask, types, trace=None):
    """The encoder from ``torch.nn.functional`` building blocks, on tensors ``P``.

    With a training ``trace``, dropout reuses its recorded masks. Returns the hidden states
    and ``embed.sum`` (with its gradient retained).
    """
    F = torch.nn.functional
    B, S = ids.shape
    D, H, eps = config.d_model, config.n_heads, config.layer_norm_eps
    Dh = D // H

    def drop(x, name):
        if trace is None:
            return x
        return x * torch.from_numpy(trace[name].copy()) / (1 - config.dropout)

    def ln(x, prefix):
        return F.layer_norm(x, (D,), P[f"{prefix}.gamma"], P[f"{prefix}.beta"], eps)

    def lin(x, W, b):  # our W is (d_in, d_out); F.linear wants (d_out, d_in)
        return F.linear(x, P[W].T, P[b])

    def heads(x):  # (B, S, D) -> (B, H, S, Dh)
        return x.view(B, S, H, Dh).transpose(1, 2)

    x = F.embedding(torch.from_numpy(ids), P["embed.W_E"])
    if config.positional == "learned":
        x = x + P["embed.W_pos"][:S]
    elif config.positional == "sinusoidal":
        x = x + torch.from_numpy(sinusoidal_positional_encoding(S, D, "float64"))
    if config.type_vocab_size:
        x = x + F.embedding(torch.from_numpy(types), P["embed.W_type"])
    x.retain_grad()
    embed_sum = x
    if config.embed_layer_norm:
        x = ln(x, "embed.ln")
    x = drop(x, "embed.dropout_mask")

    pad = torch.ones(B, S, dtype=torch.bool) if mask is None else torch.from_numpy(mask == 1)
    allowed = pad[:, None, None, :]  # (B, 1, 1, S)
    if config.causal:
        allowed = allowed & torch.ones(S, S, dtype=torch.bool).tril()
    anything = allowed.any(-1, keepdim=True)  # rows with at least one key

    def attention(x, b):
        q, k, v = (heads(lin(x, f"{b}.attn.W_{n}", f"{b}.attn.b_{n}")) for n in "QKV")
        scores = q @ k.transpose(-1, -2) / (math.sqrt(Dh) if config.scale_scores else 1.0)
        scores = scores.masked_fill(~allowed, -math.inf).masked_fill(~anything, 0.0)
        weights = torch.softmax(scores, dim=-1) * anything  # fully masked rows: 0, not NaN
        z = drop(weights, f"{b}.attn.weights_dropout_mask") @ v
        concat = z.transpose(1, 2).reshape(B, S, D)
        return drop(lin(concat, f"{b}.attn.W_O", f"{b}.attn.b_O"), f"{b}.attn.out_dropout_mask")

    act = {
        "relu": F.relu,
        "gelu": F.gelu,
        "gelu_tanh": lambda u: F.gelu(u, approximate="tanh"),
    }[config.activation]

    def feed_forward(h, b):
        a = drop(act(lin(h, f"{b}.ffn.W_1", f"{b}.ffn.b_1")), f"{b}.ffn.act_dropout_mask")
        return drop(lin(a, f"{b}.ffn.W_2", f"{b}.ffn.b_2"), f"{b}.ffn.out_dropout_mask")

    for l in range(config.n_layers):
        b = f"blocks.{l}"
        if config.norm == "post":
            h = ln(x + attention(x, b), f"{b}.ln1")
            x = ln(h + feed_forward(h, b), f"{b}.ln2")
        else:
            h = x + attention(ln(x, f"{b}.ln1"), b)
            x = h + feed_forward(ln(h, f"{b}.ln2"), b)
    if config.norm == "pre":
        x = ln(x, "final_ln")
    return x, embed_sum


@pytest.mark.parametrize("case", list(CASES))
def test_encoder_gradients_match_torch_autograd(case):
    torch = pytest.importorskip("torch")
    model, ids, mask, types, training, R = make_case(case)
    hidden, trace = run(model, ids, mask, types, training)
    grads = backward(model, trace, R)

    P = {n: torch.tensor(v, requires_grad=True) for n, v in model.params.items()}
    t_hidden, t_embed_sum = torch_encoder(
        torch, model.config, P, ids, mask, types, trace if training else None
    )
    np.testing.assert_allclose(t_hidden.detach().numpy(), hidden, rtol=0, atol=1e-12)
    (t_hidden * torch.from_numpy(R)).sum().backward()
    for name in model.params:
        torch_grad = P[name].grad.numpy()
        assert_param_close(
            f"{case} {name} vs torch", name, grads.params[name], torch_grad, TORCH_TOL
        )
    assert_close(
        f"{case} embeddings vs torch", grads.embeddings, t_embed_sum.grad.numpy(), TORCH_TOL
    )


@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("norm", ["post", "pre"])
def test_one_block_matches_torch_transformer_encoder_layer(norm, activation):
    torch = pytest.importorskip("torch")
    config = EncoderConfig(
        **{**TINY, "n_layers": 1}, positional="none", norm=norm, activation=activation
    )
    rng = np.random.default_rng(11)
    model = Encoder(config, params=random_params(config, rng))
    ids = rng.integers(0, config.vocab_size, (2, 5))
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
    R = rng.standard_normal((2, 5, config.d_model))
    hidden, trace = model.run_with_trace(ids, mask)
    grads = backward(model, trace, R)

    layer = torch.nn.TransformerEncoderLayer(
        config.d_model,
        config.n_heads,
        config.d_ff,
        dropout=0.0,
        activation=activation,
        layer_norm_eps=config.layer_norm_eps,
        batch_first=True,
        norm_first=norm == "pre",
        dtype=torch.float64,
    ).eval()
    p = {n: torch.from_numpy(v) for n, v in model.params.items()}
    with torch.no_grad():  # copy our (d_in, d_out) weights into torch's (d_out, d_in)
        attn = layer.self_attn
        attn.in_proj_weight.copy_(torch.cat([p[f"blocks.0.attn.W_{n}"].T for n in "QKV"]))
        attn.in_proj_bias.copy_(torch.cat([p[f"blocks.0.attn.b_{n}"] for n in "QKV"]))
        attn.out_proj.weight.copy_(p["blocks.0.attn.W_O"].T)
        attn.out_proj.bias.copy_(p["blocks.0.attn.b_O"])
        layer.linear1.weight.copy_(p["blocks.0.ffn.W_1"].T)
        layer.linear1.bias.copy_(p["blocks.0.ffn.b_1"])
        layer.linear2.weight.copy_(p["blocks.0.ffn.W_2"].T)
        layer.linear2.bias.copy_(p["blocks.0.ffn.b_2"])
        for i in (1, 2):
            getattr(layer, f"norm{i}").weight.copy_(p[f"blocks.0.ln{i}.gamma"])
            getattr(layer, f"norm{i}").bias.copy_(p[f"blocks.0.ln{i}.beta"])
    final = (
        {n: p[f"final_ln.{n}"].clone().requires_grad_() for n in ("gamma", "beta")}
        if norm == "pre"
        else {}
    )

    x = torch.from_numpy(model.params["embed.W_E"][ids]).requires_grad_()
    out = layer(x, src_key_padding_mask=torch.from_numpy(mask == 0))  # True = ignore
    if norm == "pre":  # torch's layer has no final LayerNorm; ours closes a pre-norm stack
        out = torch.nn.functional.layer_norm(
            out, (config.d_model,), final["gamma"], final["beta"], config.layer_norm_eps
        )
    np.testing.assert_allclose(out.detach().numpy(), hidden, rtol=0, atol=1e-12)
    (out * torch.from_numpy(R)).sum().backward()

    g = grads.params
    pairs = {
        "in_proj_weight": (
            np.concatenate([g[f"blocks.0.attn.W_{n}"].T for n in "QKV"]),
            attn.in_proj_weight,
        ),
        "in_proj_bias": (
            np.concatenate([g[f"blocks.0.attn.b_{n}"] for n in "QKV"]),
            attn.in_proj_bias,
        ),
        "out_proj.weight": (g["blocks.0.attn.W_O"].T, attn.out_proj.weight),
        "out_proj.bias": (g["blocks.0.attn.b_O"], attn.out_proj.bias),
        "linear1.weight": (g["blocks.0.ffn.W_1"].T, layer.linear1.weight),
        "linear1.bias": (g["blocks.0.ffn.b_1"], layer.linear1.bias),
        "linear2.weight": (g["blocks.0.ffn.W_2"].T, layer.linear2.weight),
        "linear2.bias": (g["blocks.0.ffn.b_2"], layer.linear2.bias),
        "norm1.weight": (g["blocks.0.ln1.gamma"], layer.norm1.weight),
        "norm1.bias": (g["blocks.0.ln1.beta"], layer.norm1.bias),
        "norm2.weight": (g["blocks.0.ln2.gamma"], layer.norm2.weight),
        "norm2.bias": (g["blocks.0.ln2.beta"], layer.norm2.bias),
        "input": (grads.embeddings, x),
    }
    for n, t in final.items():
        pairs[f"final_ln.{n}"] = (g[f"final_ln.{n}"], t)
    for name, (ours, theirs) in pairs.items():
        assert_close(
            f"TransformerEncoderLayer {norm} {activation} {name}",
            ours,
            theirs.grad.numpy(),
            TORCH_TOL,
        )
