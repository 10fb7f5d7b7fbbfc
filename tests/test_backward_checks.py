"""The catalogue of mistakes of notebook 12: every backward check fails every wrong answer.

Each entry is an actual wrong implementation, written as a learner would write it (not with
the switches the checks use internally), with the mistake name the check must report and
words its message must contain. The right implementations -- the library's, a learner's
independent one, and the reference answers of ``tutorials/solutions/ex12.py`` -- pass. The
checks' own expected numbers are checked against finite differences, so a check can never
teach a wrong gradient.
"""

from __future__ import annotations

import importlib
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from minitransformer.attention import scaled_dot_product_attention_backward
from minitransformer.functional import (
    layer_norm,
    layer_norm_backward,
    masked_softmax,
    normalize,
    softmax,
    softmax_backward,
)
from minitransformer.heads import cross_entropy
from minitransformer.testing import CheckFailed
from minitransformer.testing import backward as checks
from minitransformer.testing.backward import numerical_gradient, train_step_variant

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"


def solutions() -> Any:
    """``tutorials/solutions/ex12.py``, the reference answers of notebook 12."""
    if str(TUTORIALS) not in sys.path:
        sys.path.insert(0, str(TUTORIALS))
    return importlib.import_module("solutions.ex12")


# ------------------------------------------------------------------- softmax backward


def my_softmax_backward(grad_out, weights):
    dot = np.sum(grad_out * weights, axis=-1, keepdims=True)
    return weights * grad_out - weights * dot


def softmax_bwd_no_diagonal(grad_out, weights):
    return -weights * (grad_out * weights).sum(axis=-1, keepdims=True)


def softmax_bwd_diagonal_only(grad_out, weights):
    return grad_out * weights * (1 - weights)


def softmax_bwd_elementwise(grad_out, weights):
    return grad_out * weights


def softmax_bwd_not_times_w(grad_out, weights):
    return grad_out - (grad_out * weights).sum(axis=-1, keepdims=True)


def softmax_bwd_unweighted(grad_out, weights):
    return weights * (grad_out - grad_out.sum(axis=-1, keepdims=True))


def softmax_bwd_mean(grad_out, weights):
    return weights * (grad_out - np.mean(grad_out * weights, axis=-1, keepdims=True))


def softmax_bwd_axis0(grad_out, weights):
    return weights * (grad_out - (grad_out * weights).sum(axis=0, keepdims=True))


def softmax_bwd_no_keepdims(grad_out, weights):
    return weights * (grad_out - (grad_out * weights).sum(axis=-1))


def softmax_bwd_full_jacobian_loop(grad_out, weights):
    """The Jacobian built row by row, but J = diag(w) - w w^T applied as w w^T - diag(w)."""
    out = np.zeros_like(weights)
    for index in np.ndindex(weights.shape[:-1]):
        w = weights[index]
        J = np.outer(w, w) - np.diag(w)
        out[index] = J.T @ grad_out[index]
    return out


def softmax_bwd_recomputed(grad_out, weights):
    w = softmax(weights)  # treats the weights as scores
    return w * (grad_out - (grad_out * w).sum(axis=-1, keepdims=True))


def softmax_bwd_in_place(grad_out, weights):
    grad_out -= (grad_out * weights).sum(axis=-1, keepdims=True)
    grad_out *= weights
    return grad_out


def softmax_bwd_as_list(grad_out, weights):
    return my_softmax_backward(grad_out, weights).tolist()


SOFTMAX_MISTAKES = [
    (softmax_bwd_no_diagonal, "softmax_backward_no_diagonal", "diagonal term diag(w) is missing"),
    (softmax_bwd_diagonal_only, "softmax_backward_diagonal_only", "only the diagonal"),
    (softmax_bwd_elementwise, "softmax_backward_elementwise", "normalisation"),
    (softmax_bwd_not_times_w, "softmax_backward_not_times_w", "did not multiply by w"),
    (softmax_bwd_unweighted, "softmax_backward_unweighted_sum", "weighted by w"),
    (softmax_bwd_mean, "softmax_backward_mean", "*sum* over the keys"),
    (softmax_bwd_axis0, "softmax_backward_wrong_axis", "summed over axis 0"),
    (softmax_bwd_no_keepdims, "softmax_backward_missing_keepdims", "keepdims=True"),
    (softmax_bwd_full_jacobian_loop, "softmax_backward_sign", "wrong sign"),
    (softmax_bwd_recomputed, "softmax_backward_softmax_again", "softmax's *output*"),
    (softmax_bwd_in_place, "mutated_input", "changed its input `grad_out`"),
    (softmax_bwd_as_list, "returned_list", "NumPy array"),
    (lambda grad_out, weights: grad_out, "softmax_backward_identity", "unchanged"),
]


# ----------------------------------------------------------------- attention backward


def my_attention_backward(grad_out, q, k, v, weights):
    d = q.shape[-1]
    grad_v = np.swapaxes(weights, -1, -2) @ grad_out
    grad_weights = grad_out @ np.swapaxes(v, -1, -2)
    grad_scores = weights * (grad_weights - np.sum(grad_weights * weights, -1, keepdims=True))
    grad_q = grad_scores @ k / math.sqrt(d)
    grad_k = np.swapaxes(grad_scores, -1, -2) @ q / math.sqrt(d)
    return grad_q, grad_k, grad_v


def make_attention_backward(
    scale: Callable[[int], float] = lambda d: 1 / math.sqrt(d),
    v_transposed: bool = True,
    k_transposed: bool = True,
    through_softmax: str = "right",
    swap_q_k: bool = False,
    returns: str = "tuple",
):
    """A learner's attention backward with one slip (the defaults are right)."""

    def attention_backward(grad_out, q, k, v, weights):
        T = lambda a: np.swapaxes(a, -1, -2)  # noqa: E731
        grad_v = (T(weights) if v_transposed else weights) @ grad_out
        grad_w = grad_out @ T(v)
        if through_softmax == "right":
            grad_s = weights * (grad_w - (grad_w * weights).sum(-1, keepdims=True))
        elif through_softmax == "skipped":
            grad_s = grad_w
        else:  # the diagonal term forgotten
            grad_s = -weights * (grad_w * weights).sum(-1, keepdims=True)
        factor = scale(q.shape[-1])
        grad_q = grad_s @ k * factor
        grad_k = (T(grad_s) if k_transposed else grad_s) @ q * factor
        if swap_q_k:
            grad_q, grad_k = T(grad_s) @ q * factor, grad_s @ k * factor
        if returns == "dict":
            return {"q": grad_q, "k": grad_k, "v": grad_v}
        if returns == "two":
            return grad_q, grad_k
        return grad_q, grad_k, grad_v

    return attention_backward


ATTENTION_MISTAKES = [
    (make_attention_backward(scale=lambda d: 1.0), "attention_backward_no_scale", "sqrt(d_head)"),
    (make_attention_backward(scale=lambda d: 1 / d), "attention_backward_scale_d", "d_head = 4"),
    (make_attention_backward(scale=math.sqrt), "attention_backward_scale_inverted", "multiplied"),
    (make_attention_backward(v_transposed=False), "raised", "It was called as"),
    (make_attention_backward(k_transposed=False), "raised", "It was called as"),
    (make_attention_backward(through_softmax="skipped"), "attention_backward_no_softmax",
     "back through the softmax"),
    (make_attention_backward(through_softmax="no_diagonal"),
     "attention_backward_softmax_no_diagonal", "diagonal term"),
    (make_attention_backward(swap_q_k=True), "attention_backward_swapped_q_k", "formula of dL/dk"),
    (make_attention_backward(returns="dict"), "wrong_return", "(grad_q, grad_k, grad_v)"),
    (lambda grad_out, q, k, v, weights: (q, k, grad_out), "attention_backward_grad_v_is_out",
     "returned dL/dout as dL/dv"),
    (lambda grad_out, q, k, v, weights: (k, q, weights.T @ grad_out), "wrong_shape",
     "That is the shape of k"),
    (make_attention_backward(returns="two"), "wrong_return", "a tuple of 2"),
]  # fmt: skip

# Slips that only a square case (as many queries as keys) can tell by value: the first case
# has 3 queries and 5 keys, so there they raise or change a shape; these run the second case.
SQUARE_ATTENTION_MISTAKES = [
    (make_attention_backward(v_transposed=False), "attention_backward_grad_v_not_transposed",
     "weights^T @ dL/dout"),
    (make_attention_backward(k_transposed=False), "attention_backward_grad_k_not_transposed",
     "*column* j"),
    (make_attention_backward(swap_q_k=True), "attention_backward_swapped_q_k",
     "formula of dL/dk"),
]  # fmt: skip


# ----------------------------------------------------------------- layer norm backward


def my_layer_norm_backward(grad_out, x, gamma, eps=1e-5):
    D = x.shape[-1]
    mu = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    x_hat = (x - mu) / np.sqrt(var + eps)
    g_hat = grad_out * gamma
    sum_g = g_hat.sum(-1, keepdims=True)
    sum_gx = (g_hat * x_hat).sum(-1, keepdims=True)
    grad_x = (D * g_hat - sum_g - x_hat * sum_gx) / (D * np.sqrt(var + eps))
    axes = tuple(range(x.ndim - 1))
    return grad_x, (grad_out * x_hat).sum(axis=axes), grad_out.sum(axis=axes)


def make_layer_norm_backward(mistake: str = ""):
    """A learner's layer norm backward with one slip (``""``: right)."""

    def layer_norm_backward(grad_out, x, gamma, eps=1e-5):
        mu = x.mean(-1, keepdims=True)
        ddof = 1 if mistake == "unbiased" else 0
        var = x.var(-1, keepdims=True, ddof=ddof)
        std = np.sqrt(var) + eps if mistake == "eps_outside" else np.sqrt(var + eps)
        x_hat = (x - mu) / std
        g_hat = grad_out if mistake == "no_gamma" else grad_out * gamma
        mean_g = g_hat.mean(-1, keepdims=True)
        mean_gx = (g_hat * x_hat).mean(-1, keepdims=True)
        if mistake == "no_mean":
            grad_x = (g_hat - x_hat * mean_gx) / std
        elif mistake == "no_variance":
            grad_x = (g_hat - mean_g) / std
        elif mistake == "constants":
            grad_x = g_hat / std
        elif mistake == "by_var":
            grad_x = (g_hat - mean_g - x_hat * mean_gx) / (var + eps)
        else:
            grad_x = (g_hat - mean_g - x_hat * mean_gx) / std
        D = x.shape[-1]
        grad_gamma = (grad_out * (x if mistake == "gamma_from_x" else x_hat)).reshape(-1, D)
        grad_beta = grad_out.reshape(-1, D)
        if mistake == "not_summed":
            return grad_x, grad_gamma, grad_beta
        grad_gamma, grad_beta = grad_gamma.sum(0), grad_beta.sum(0)
        if mistake == "swapped":
            grad_gamma, grad_beta = grad_beta, grad_gamma
        return grad_x, grad_gamma, grad_beta

    return layer_norm_backward


LAYER_NORM_MISTAKES = [
    (make_layer_norm_backward("no_mean"), "layer_norm_backward_no_mean_term", "mean term"),
    (make_layer_norm_backward("no_variance"), "layer_norm_backward_no_variance_term",
     "variance term"),
    (make_layer_norm_backward("constants"), "layer_norm_backward_constants", "as constants"),
    (make_layer_norm_backward("no_gamma"), "layer_norm_backward_no_gamma", "forgot gamma"),
    (make_layer_norm_backward("by_var"), "layer_norm_backward_divide_by_var",
     "divided by the variance"),
    (make_layer_norm_backward("swapped"), "layer_norm_backward_gamma_beta_swapped",
     "formula of dL/dgamma"),
    (make_layer_norm_backward("gamma_from_x"), "layer_norm_backward_gamma_uses_x", "raw input x"),
    (make_layer_norm_backward("not_summed"), "wrong_shape", "summed over all of them"),
    (make_layer_norm_backward("unbiased"), "mismatch", "Finite differences"),
    (make_layer_norm_backward("eps_outside"), "imprecise", "another epsilon"),
]  # fmt: skip


# ---------------------------------------------------------------------- training step


def my_train_step(model, classifier, batch, optimizer):
    hidden, trace = model.run_with_trace(batch.token_ids, batch.mask)
    logits = classifier(hidden, batch.mask)
    loss, grad_logits = cross_entropy(logits, batch.targets)
    grad_head, grad_hidden = classifier.backward(grad_logits, hidden, batch.mask)
    grads = model.backward(trace, grad_hidden, batch.token_ids).params
    for name, grad in grad_head.items():
        grads["head." + name] = grad
    optimizer.step(grads)
    return loss


def make_train_step(mistake: str = ""):
    """A learner's training step with one slip (``""``: right)."""

    def train_step(model, classifier, batch, optimizer):
        mask = None if mistake == "no_mask" else batch.mask
        hidden, trace = model.run_with_trace(batch.token_ids, mask)
        logits = classifier(hidden, mask)
        loss, grad_logits = cross_entropy(logits, batch.targets)
        grad_head, grad_hidden = classifier.backward(grad_logits, hidden, mask)
        grads = model.backward(trace, grad_hidden, batch.token_ids).params
        if mistake != "encoder_only":
            grads.update({"head." + name: g for name, g in grad_head.items()})
        if mistake == "ascent":
            grads = {name: -g for name, g in grads.items()}
        if mistake == "sgd":
            for name, param in optimizer.params.items():
                param -= 0.01 * grads[name]
        elif mistake != "no_step":
            optimizer.step(grads)
        if mistake == "twice":
            optimizer.step(grads)
        if mistake == "loss_after":
            loss = cross_entropy(classifier(model(batch.token_ids, mask), mask), batch.targets)[0]
        if mistake == "tuple":
            return loss, grads
        return loss

    return train_step


TRAIN_STEP_MISTAKES = [
    (make_train_step("no_step"), "train_step_no_update", "did not change"),
    (make_train_step("twice"), "train_step_two_updates", "called twice"),
    (make_train_step("ascent"), "train_step_gradient_ascent", "uphill"),
    (make_train_step("sgd"), "train_step_plain_sgd", "by hand"),
    (make_train_step("loss_after"), "train_step_loss_after_update", "after the update"),
    (make_train_step("no_mask"), "train_step_no_mask", "padding mask"),
    (make_train_step("encoder_only"), "raised", '"head.W"'),
    (make_train_step("tuple"), "not_a_number", "should be a number"),
]

CHECKS: dict[str, Callable[..., bool]] = {
    "softmax": checks.check_softmax_backward,
    "attention": checks.check_attention_backward,
    "layer_norm": checks.check_layer_norm_backward,
    "train_step": checks.check_train_step,
}
CATALOGUE = [
    (check, wrong, mistake, words)
    for check, entries in [
        ("softmax", SOFTMAX_MISTAKES),
        ("attention", ATTENTION_MISTAKES),
        ("layer_norm", LAYER_NORM_MISTAKES),
        ("train_step", TRAIN_STEP_MISTAKES),
    ]
    for wrong, mistake, words in entries
]


@pytest.mark.parametrize(
    ("check", "wrong", "mistake", "words"),
    CATALOGUE,
    ids=[f"{check}-{i}-{mistake}" for i, (check, _, mistake, _) in enumerate(CATALOGUE)],
)
def test_each_mistake_fails_with_its_name(check: str, wrong: Any, mistake: str, words: str):
    with pytest.raises(CheckFailed) as failure:
        CHECKS[check](wrong)
    message = str(failure.value)
    assert failure.value.mistake == mistake, message
    assert words in message, message


@pytest.mark.parametrize(
    ("wrong", "mistake", "words"),
    SQUARE_ATTENTION_MISTAKES,
    ids=[mistake for _, mistake, _ in SQUARE_ATTENTION_MISTAKES],
)
def test_transposes_are_named_where_the_shapes_allow_them(wrong, mistake, words, monkeypatch):
    """With as many queries as keys a missing transpose runs; the check names it by value."""

    def square_first(fn, *, verbose=False):  # skip the first (3 x 5) case's shape error
        calls = {"n": 0}

        def on_square(grad_out, q, k, v, weights):
            calls["n"] += 1
            if calls["n"] == 1:
                return my_attention_backward(grad_out, q, k, v, weights)
            return fn(grad_out, q, k, v, weights)

        return checks.check_attention_backward(on_square)

    with pytest.raises(CheckFailed) as failure:
        square_first(wrong)
    assert failure.value.mistake == mistake, str(failure.value)
    assert words in str(failure.value)
    assert "case 2" in str(failure.value)


def library_layer_norm_backward(grad_out, x, gamma, eps=1e-5):
    x_hat, _, std = normalize(x, eps)
    return layer_norm_backward(grad_out, x_hat, std, gamma)


RIGHT = [
    ("softmax", softmax_backward),
    ("softmax", my_softmax_backward),
    ("softmax", lambda grad_out, weights: my_softmax_backward(grad_out, weights).astype("f4")),
    ("softmax", lambda grad_out, weights: solutions().softmax_backward(grad_out, weights)),
    ("attention", scaled_dot_product_attention_backward),
    ("attention", my_attention_backward),
    ("attention", make_attention_backward()),
    ("attention", lambda *args: solutions().attention_backward(*args)),
    ("layer_norm", library_layer_norm_backward),
    ("layer_norm", my_layer_norm_backward),
    ("layer_norm", make_layer_norm_backward()),
    ("layer_norm", lambda *args, **kw: solutions().layer_norm_backward(*args, **kw)),
    ("train_step", my_train_step),
    ("train_step", make_train_step()),
    ("train_step", train_step_variant),
    ("train_step", lambda *args: solutions().train_step(*args)),
]


@pytest.mark.parametrize(
    ("check", "right"), RIGHT, ids=[f"{c}-{i}" for i, (c, _) in enumerate(RIGHT)]
)
def test_each_right_answer_passes(check: str, right: Any, capsys):
    assert CHECKS[check](right) is True
    assert capsys.readouterr().out.startswith("✓")


def test_the_catalogue_covers_every_check_of_the_chapter():
    """At least 15 wrong implementations, every check of the module tried with several."""
    assert len(CATALOGUE) >= 15
    public = {name for name in dir(checks) if name.startswith("check_")}
    assert public == {fn.__name__ for fn in CHECKS.values()}
    per_check = {c: sum(1 for entry in CATALOGUE if entry[0] == c) for c in CHECKS}
    assert min(per_check.values()) >= 5, per_check


def test_a_stub_is_not_done_yet_in_every_check(capsys):
    def stub(*args, **kwargs):
        raise NotImplementedError("your code here")

    for check in CHECKS.values():
        assert check(stub) is False
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(CHECKS) and all("not done yet" in line for line in lines), lines


# ------------------------------------------------- the checks' own numbers are right


def test_numerical_gradient_matches_a_known_derivative():
    x = np.array([[0.5, -1.0], [2.0, 0.25]])
    g = np.array([[1.0, 2.0], [-1.0, 0.5]])
    # L = sum(g * x**3): dL/dx = 3 g x**2
    assert np.allclose(numerical_gradient(lambda a: a**3, x, g), 3 * g * x**2, atol=1e-6)
    assert x[0, 0] == 0.5  # the caller's array is left alone


@pytest.mark.parametrize("masked", [False, True])
def test_the_library_backwards_agree_with_finite_differences(masked):
    """The expected numbers of every check: the library's backward passes, confirmed."""
    rng = np.random.default_rng(0)
    mask = np.tril(np.ones((4, 4), bool)) if masked else None
    s, g = rng.normal(size=(2, 4, 4)), rng.normal(size=(2, 4, 4))
    w = masked_softmax(s, mask)
    numeric = numerical_gradient(lambda x: masked_softmax(x, mask), s, g)
    assert np.allclose(softmax_backward(g, w), numeric, atol=1e-7)

    q, k, v = rng.normal(size=(3, 4, 4)), rng.normal(size=(3, 4, 4)), rng.normal(size=(3, 4, 2))
    w = masked_softmax(q @ k.swapaxes(-1, -2) / 2, mask)
    g_out = rng.normal(size=(3, 4, 2))
    grads = scaled_dot_product_attention_backward(g_out, q, k, v, w)
    for i, x in enumerate((q, k, v)):

        def forward(a, i=i):
            args = [q, k, v]
            args[i] = a
            return masked_softmax(args[0] @ args[1].swapaxes(-1, -2) / 2, mask) @ args[2]

        assert np.allclose(grads[i], numerical_gradient(forward, x, g_out), atol=1e-7)

    x, gamma, beta = rng.normal(size=(3, 5)), rng.normal(size=5), rng.normal(size=5)
    g = rng.normal(size=(3, 5))
    x_hat, _, std = normalize(x, 1e-5)
    grad_x, grad_gamma, grad_beta = layer_norm_backward(g, x_hat, std, gamma)
    assert np.allclose(grad_x, numerical_gradient(lambda a: layer_norm(a, gamma, beta, 1e-5), x, g),
                       atol=1e-7)  # fmt: skip
    assert np.allclose(grad_gamma, numerical_gradient(lambda a: layer_norm(x, a, beta, 1e-5),
                                                      gamma, g), atol=1e-7)  # fmt: skip
    assert np.allclose(grad_beta, g.sum(axis=0))


def test_a_mismatch_message_shows_the_finite_difference_estimate():
    with pytest.raises(CheckFailed) as failure:
        checks.check_softmax_backward(
            lambda grad_out, weights: 2 * softmax_backward(grad_out, weights)
        )
    assert failure.value.mistake == "mismatch"
    assert "Finite differences of the forward pass agree" in str(failure.value)
