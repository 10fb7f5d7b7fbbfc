"""Checks for backpropagation by hand: softmax, attention, layer norm, and one training step.

Each backward check runs the learner's function on small float64 cases and compares every
gradient with two witnesses: the library's hand-written backward pass
(:func:`~minitransformer.functional.softmax_backward`,
:func:`~minitransformer.attention.scaled_dot_product_attention_backward`,
:func:`~minitransformer.functional.layer_norm_backward`) and :func:`numerical_gradient`,
central differences of the forward pass. A wrong gradient is matched against what each classic
mistake would have produced -- the softmax Jacobian's diagonal term left out, a product not
transposed, the 1/sqrt(d) of the scores forgotten, the mean or the variance of layer norm
treated as a constant -- and the message names it.

The cases are built so that the mistakes give different numbers: more queries than keys and
values narrower than keys (a missing transpose changes a shape or a value), ``d_head = 4``
(so 1/sqrt(d) = 0.5, 1/d = 0.25 and sqrt(d) = 2 differ), a causal mask with a fully masked
row, ``gamma`` far from 1, leading batch axes.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from minitransformer.attention import causal_mask, scaled_dot_product_attention_backward
from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from minitransformer.functional import (
    layer_norm,
    layer_norm_backward,
    masked_softmax,
    normalize,
    softmax_backward,
)
from minitransformer.heads import Classifier, cross_entropy
from minitransformer.optim import AdamW
from minitransformer.tasks import Batch
from minitransformer.testing.checker import Checker, Mistake, example, learner_check
from minitransformer.training import loss_and_grads, parameters

FINITE_DIFFERENCE_STEP = 1e-6  # central differences in float64: error about 1e-10 here
KEEPDIMS_HINT = (
    "A shape error here usually means a sum without `keepdims=True`: `(g * w).sum(axis=-1)` "
    "has lost the last axis and cannot be subtracted from g. Use "
    "`(g * w).sum(axis=-1, keepdims=True)`."
)


def numerical_gradient(
    f: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    grad_out: np.ndarray,
    eps: float = FINITE_DIFFERENCE_STEP,
) -> np.ndarray:
    """``dL/dx`` by central differences, for the loss ``L(x) = sum(grad_out * f(x))``.

    Nudging one entry ``x_i`` by ``+eps`` and ``-eps`` changes L by about ``2 eps dL/dx_i``;
    the same ``L`` has ``dL/df = grad_out``, so this is the gradient a backward function given
    ``grad_out`` must return. One pair of forward passes per entry: for small arrays only.

    Parameters
    ----------
    f : callable
        The forward function, ``f(x) -> ndarray``.
    x : ndarray of float64, any shape
        Where to take the gradient (not modified).
    grad_out : ndarray of the shape of ``f(x)``
        ``dL/df``.
    eps : float
        The nudge. In float64, 1e-6 balances the error of the formula (about eps^2) against
        rounding (about 1e-16 / eps).

    Returns
    -------
    ndarray of the shape of ``x``
    """
    x = np.array(x, dtype=np.float64)  # a copy: the nudges never reach the caller's array
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        saved = x[i]
        x[i] = saved + eps
        up = float((grad_out * f(x)).sum())
        x[i] = saved - eps
        down = float((grad_out * f(x)).sum())
        x[i] = saved
        grad[i] = (up - down) / (2 * eps)
    return grad


def numerical_gradients(
    f: Callable[..., np.ndarray], inputs: list[np.ndarray], grad_out: np.ndarray
) -> list[np.ndarray]:
    """:func:`numerical_gradient` of ``f(*inputs)`` with respect to each input in turn."""
    grads = []
    for i, x in enumerate(inputs):

        def f_of_input_i(value: np.ndarray, i: int = i) -> np.ndarray:
            args = list(inputs)
            args[i] = value
            return f(*args)

        grads.append(numerical_gradient(f_of_input_i, x, grad_out))
    return grads


def _attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The forward pass the attention check differentiates: ``softmax(q k^T / sqrt(d)) @ v``."""
    return masked_softmax(q @ k.swapaxes(-1, -2) / math.sqrt(q.shape[-1]), mask) @ v


def _witness(numeric: np.ndarray) -> str:
    """The finite-difference estimate, as a line under a failure."""
    flat = np.array2string(numeric.ravel()[:6], precision=3, suppress_small=True)
    return f"\nFinite differences of the forward pass agree with the expected numbers: {flat}"


def _differs(
    got: np.ndarray, expected: np.ndarray, numeric: np.ndarray, what: str
) -> Callable[[], tuple[str, str] | None]:
    """The diagnosis of a gradient that matches no known mistake: the first entry that
    differs, and the finite-difference estimate beside it (None for NaN or a near miss, which
    :meth:`Checker.compare` reports itself)."""

    def diagnose() -> tuple[str, str] | None:
        if not np.isfinite(got).all() or np.allclose(got, expected, rtol=1e-3, atol=1e-3):
            return None
        return (
            f"Your {what} differs from the expected one, which finite differences of the "
            "forward pass confirm: this does not look like any of the classic mistakes this "
            "check knows, so compare the two step by step.\n"
            + example(expected, got, what)
            + _witness(numeric),
            "mismatch",
        )

    return diagnose


def _tuple_of(c: Checker, result: Any, names: tuple[str, ...]) -> list[np.ndarray]:
    """The learner's result as len(names) float arrays, or a failure saying what to return."""
    wanted = "(" + ", ".join(names) + ")"
    if not isinstance(result, (tuple, list)) or len(result) != len(names):
        got = (
            f"a {type(result).__name__} of {len(result)}"
            if isinstance(result, (tuple, list))
            else f"a {type(result).__name__}"
        )
        raise c.fail(
            f"Your {c.name} returned {got}; return the {len(names)} gradients as a tuple "
            f"{wanted}, in that order.",
            "wrong_return",
        )
    return [c.array(value, what) for value, what in zip(result, names, strict=True)]


# -------------------------------------------------------------------------------- softmax


def _softmax_mistakes(g: np.ndarray, w: np.ndarray) -> list[Mistake]:
    """What each classic slip gives for ``dL/dscores`` from ``g = dL/dw`` and ``w``."""
    gw = (g * w).sum(axis=-1, keepdims=True)  # (..., 1): sum_i g_i w_i
    jacobian = "J = diag(w) - w w^T, so dL/ds = J^T g = w * (g - sum(g * w))"
    mistakes = [
        Mistake(
            "softmax_backward_no_diagonal",
            "You kept only the -w w^T part of the softmax's Jacobian: the diagonal term diag(w) "
            f"is missing (d w_i / d s_i = w_i - w_i^2 has a w_i of its own). {jacobian}.",
            -w * gw,
        ),
        Mistake(
            "softmax_backward_diagonal_only",
            "You used only the diagonal of the softmax's Jacobian, w * (1 - w) * g, as if each "
            "weight depended on its own score alone; every weight depends on every score of "
            f"its row (raising one lowers the others). {jacobian}.",
            w * (1 - w) * g,
        ),
        Mistake(
            "softmax_backward_elementwise",
            "You multiplied g by w and stopped: that is the derivative of exp(s), without the "
            "normalisation's part. The weights share one denominator, so subtract the "
            f"weighted mean of g: {jacobian}.",
            w * g,
        ),
        Mistake(
            "softmax_backward_not_times_w",
            "You subtracted the weighted mean but did not multiply by w afterwards: "
            f"{jacobian}. (A masked key, w = 0, must get gradient 0.)",
            g - gw,
        ),
        Mistake(
            "softmax_backward_unweighted_sum",
            "You subtracted the plain sum of g; the sum must be weighted by w: "
            f"sum(g * w). {jacobian}.",
            w * (g - g.sum(axis=-1, keepdims=True)),
        ),
        Mistake(
            "softmax_backward_mean",
            "You subtracted `(g * w).mean(...)`; it is the *sum* over the keys, "
            f"sum(g * w), because the weights already sum to 1. {jacobian}.",
            w * (g - (g * w).mean(axis=-1, keepdims=True)),
        ),
        Mistake(
            "softmax_backward_sign",
            f"Your gradient has the wrong sign: {jacobian} (raising s_i raises w_i).",
            w * (gw - g),
        ),
        Mistake(
            "softmax_backward_identity",
            "You returned g unchanged: the gradient must go through the softmax's Jacobian, "
            f"{jacobian}.",
            g,
        ),
        Mistake(
            "softmax_backward_softmax_again",
            "You passed the weights through softmax again, as if they were the scores: "
            "`weights` is the softmax's *output*, already. Use it as it is: "
            f"{jacobian}.",
            _softmax_of(w) * (g - (g * _softmax_of(w)).sum(axis=-1, keepdims=True)),
        ),
    ]
    for axis in range(g.ndim - 1):
        mistakes.append(
            Mistake(
                "softmax_backward_wrong_axis",
                f"You summed over axis {axis}; the softmax normalised over the last axis "
                "(the keys), so the sum is over `axis=-1` with `keepdims=True`.",
                w * (g - (g * w).sum(axis=axis, keepdims=True)),
            )
        )
    if g.ndim == 2 and g.shape[0] == g.shape[1]:  # a square matrix hides a missing keepdims
        mistakes.append(
            Mistake(
                "softmax_backward_missing_keepdims",
                "Each row subtracted another row's sum: without `keepdims=True`, "
                "`(g * w).sum(axis=-1)` has one number per row and broadcasts along the "
                "columns. Use `(g * w).sum(axis=-1, keepdims=True)`.",
                w * (g - (g * w).sum(axis=-1)),
            )
        )
    return mistakes


def _softmax_of(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@learner_check
def check_softmax_backward(fn: Callable[..., Any], *, verbose: bool = False) -> bool:
    """Check a learner's softmax backward: ``dL/dscores`` from ``dL/dweights`` and the weights.

    Expected signature::

        softmax_backward(grad_out, weights) -> ndarray of the shape of weights

    with ``weights = softmax(scores)`` over the last axis and
    ``dL/dscores = weights * (grad_out - sum(grad_out * weights, last axis))``. Compared with
    :func:`~minitransformer.functional.softmax_backward` and with finite differences.

    Returns
    -------
    True when every case passes; False, with one printed line, when ``fn`` is still the stub.

    Raises
    ------
    CheckFailed
        Naming the likely mistake: the Jacobian's diagonal term left out, only its diagonal
        used, ``w * g`` alone, not multiplied by ``w``, an unweighted sum, a mean for the sum,
        the sign, ``g`` unchanged, softmax applied to the weights again, the wrong axis, a
        missing ``keepdims``, wrong type, dtype or shape, a modified input.
    """
    c = Checker(fn, "softmax_backward", verbose)
    rng = np.random.default_rng(12)
    scores = rng.normal(size=(4, 4)) * 1.5
    square = rng.normal(size=(2, 4, 4)) * 1.5
    mask = np.broadcast_to(causal_mask(4), square.shape).copy()
    mask[1, 0] = False  # a query with no key left: its weights are all 0
    cases = [
        ("a (4, 4) pattern", scores, None),
        ("a batch of 2 causal (4, 4) patterns, one query fully masked", square, mask),
    ]
    for title, s, m in cases:
        weights = masked_softmax(s, m)
        grad_out = rng.normal(size=s.shape)
        with c.case(title):
            got = c.array(
                c.call({"grad_out": grad_out, "weights": weights}, error_hint=KEEPDIMS_HINT)
            )
            expected = softmax_backward(grad_out, weights)
            numeric = numerical_gradient(partial(masked_softmax, mask=m), s, grad_out)
            c.compare(
                got,
                expected,
                _softmax_mistakes(grad_out, weights),
                what="grad_scores",
                nonfinite_hint=_witness(numeric),
                diagnose=_differs(got, expected, numeric, "grad_scores"),
            )
    return c.passed()


# ------------------------------------------------------------------------------ attention


def attention_backward_variant(
    grad_out: np.ndarray,
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    weights: np.ndarray,
    *,
    scale: str = "sqrt",
    grad_v: str = "right",
    grad_weights: str = "right",
    softmax: str = "right",
    grad_q: str = "right",
    grad_k: str = "right",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Attention's backward with switches that reproduce classic mistakes; defaults are right.

    ``scale``: ``"sqrt"`` (1/sqrt(d), right), ``"none"``, ``"d"`` (1/d), ``"times"`` (sqrt(d)).
    ``grad_v``: ``"not_transposed"`` (``weights @ g``). ``grad_weights``: ``"transposed"``
    (``v @ g^T``, the transpose of ``g @ v^T``; as many queries as keys only).
    ``softmax``: ``"none"`` (``dL/dscores = dL/dweights``), ``"no_diagonal"``. ``grad_q``:
    ``"transposed"`` (``g_s^T @ k``), ``"swapped"`` (dL/dk's formula, ``g_s^T @ q``).
    ``grad_k``: ``"not_transposed"`` (``g_s @ q``), ``"swapped"`` (``g_s @ k``).
    """
    d = q.shape[-1]
    factor = {"sqrt": 1 / math.sqrt(d), "none": 1.0, "d": 1 / d, "times": math.sqrt(d)}[scale]
    T = (-1, -2)  # swap the last two axes
    g_v = weights @ grad_out if grad_v == "not_transposed" else weights.swapaxes(*T) @ grad_out
    g_w = grad_out @ v.swapaxes(*T)  # (..., S_q, S_k)
    if grad_weights == "transposed":
        g_w = v @ grad_out.swapaxes(*T)  # (..., S_k, S_q): the transpose
    if softmax == "none":
        g_s = g_w
    elif softmax == "no_diagonal":
        g_s = -weights * (g_w * weights).sum(axis=-1, keepdims=True)
    else:
        g_s = softmax_backward(g_w, weights)
    if grad_q == "transposed":
        g_q = g_s.swapaxes(*T) @ k
    elif grad_q == "swapped":
        g_q = g_s.swapaxes(*T) @ q
    else:
        g_q = g_s @ k
    if grad_k == "not_transposed":
        g_k = g_s @ q
    elif grad_k == "swapped":
        g_k = g_s @ k
    else:
        g_k = g_s.swapaxes(*T) @ q
    return g_q * factor, g_k * factor, g_v


def _attention_mistakes(
    grad_out: np.ndarray, q: np.ndarray, k: np.ndarray, v: np.ndarray, weights: np.ndarray
) -> dict[str, list[Mistake]]:
    """The mistakes of each gradient, by the gradient they show in."""

    def variant(**switches: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with np.errstate(all="ignore"):
            try:
                return attention_backward_variant(grad_out, q, k, v, weights, **switches)
            except ValueError:  # the shapes of this case do not allow this slip
                empty = np.empty((0,))
                return empty, empty, empty

    d = q.shape[-1]
    scale_hints = {
        "none": (
            "attention_backward_no_scale",
            "Your dL/dq and dL/dk are too large by sqrt(d_head): the scores are "
            "q k^T / sqrt(d_head), so both gradients carry the same factor 1/sqrt(d_head) "
            f"(here 1/sqrt({d}) = {1 / math.sqrt(d):g}).",
        ),
        "d": (
            "attention_backward_scale_d",
            f"You divided by d_head = {d}, not by its square root: the scores are "
            "q k^T / sqrt(d_head), so dL/dq = dL/ds @ k / sqrt(d_head).",
        ),
        "times": (
            "attention_backward_scale_inverted",
            "You multiplied by sqrt(d_head) instead of dividing: the scores are "
            "q k^T / sqrt(d_head), so the factor in dL/dq and dL/dk is 1/sqrt(d_head).",
        ),
    }
    shared = [  # (name, hint, (grad_q, grad_k, grad_v)) of the slips in both dL/dq and dL/dk
        (name, hint, variant(scale=scale)) for scale, (name, hint) in scale_hints.items()
    ]
    no_softmax = (
        "attention_backward_no_softmax",
        "You used dL/dweights as if it were dL/dscores: the gradient has to go back through "
        "the softmax first, dL/ds = w * (dL/dw - sum(dL/dw * w)).",
        variant(softmax="none"),
    )
    no_diagonal = (
        "attention_backward_softmax_no_diagonal",
        "Your softmax backward lacks the Jacobian's diagonal term: dL/ds = w * (dL/dw - "
        "sum(dL/dw * w)), not -w * sum(dL/dw * w).",
        variant(softmax="no_diagonal"),
    )
    weights_transposed = (
        "attention_backward_grad_weights_transposed",
        "Your dL/dweights pairs the value rows with the wrong queries: out = weights @ v, so "
        "dL/dweights = dL/dout @ v^T, of shape (S_q, S_k) like the weights.",
        variant(grad_weights="transposed"),
    )
    swapped = variant(grad_q="swapped", grad_k="swapped")
    in_both = (*shared, no_softmax, no_diagonal, weights_transposed)  # slips of dL/dq and dL/dk
    return {
        "grad_v": [
            Mistake(
                "attention_backward_grad_v_not_transposed",
                "Your dL/dv is weights @ dL/dout: the weights must be transposed. Key j's "
                "value reached every query i with weight w_ij, so dL/dv_j = sum_i w_ij "
                "dL/dout_i, i.e. dL/dv = weights^T @ dL/dout.",
                variant(grad_v="not_transposed")[2],
            ),
            Mistake(
                "attention_backward_grad_v_is_out",
                "You returned dL/dout as dL/dv; it must go back through out = weights @ v: "
                "dL/dv = weights^T @ dL/dout.",
                grad_out,
            ),
        ],
        "grad_q": [
            *[Mistake(name, hint, got[0]) for name, hint, got in in_both],
            Mistake(
                "attention_backward_grad_q_transposed",
                "Your dL/dq uses dL/dscores transposed: query i's row of the scores is "
                "q_i . k_j over the keys j, so dL/dq = dL/dscores @ k / sqrt(d_head).",
                variant(grad_q="transposed")[0],
            ),
            Mistake(
                "attention_backward_swapped_q_k",
                "Your dL/dq is the formula of dL/dk (and probably the other way round): "
                "dL/dq = dL/ds @ k / sqrt(d), dL/dk = dL/ds^T @ q / sqrt(d).",
                swapped[0],
            ),
        ],
        "grad_k": [
            *[Mistake(name, hint, got[1]) for name, hint, got in in_both],
            Mistake(
                "attention_backward_grad_k_not_transposed",
                "Your dL/dk is dL/dscores @ q: the scores must be transposed, because key j "
                "is the *column* j of the scores. dL/dk = dL/dscores^T @ q / sqrt(d_head).",
                variant(grad_k="not_transposed")[1],
            ),
            Mistake(
                "attention_backward_swapped_q_k",
                "Your dL/dk is the formula of dL/dq: dL/dq = dL/ds @ k / sqrt(d), "
                "dL/dk = dL/ds^T @ q / sqrt(d).",
                swapped[1],
            ),
        ],
    }


def _attention_shape_hints(
    name: str, q: np.ndarray, k: np.ndarray, v: np.ndarray
) -> dict[tuple[int, ...], str]:
    """What a wrong shape of ``name`` (``"grad_q"``, ...) says: it has another input's shape."""
    own = name.removeprefix("grad_")
    hints = {}
    for other, array in (("v", v), ("k", k), ("q", q)):  # the last wins where shapes agree
        if other != own and array.shape != {"q": q, "k": k, "v": v}[own].shape:
            hints[array.shape] = (
                f"That is the shape of {other}: a gradient has the shape of what it is the "
                f"gradient of ({own}). Did you swap two gradients, or miss a transpose?"
            )
    return hints


@learner_check
def check_attention_backward(fn: Callable[..., Any], *, verbose: bool = False) -> bool:
    """Check a learner's backward of scaled dot-product attention.

    Expected signature::

        attention_backward(grad_out, q, k, v, weights) -> (grad_q, grad_k, grad_v)

    for the forward pass ``out = softmax(q k^T / sqrt(d_head), masked) @ v`` with
    ``weights`` its pattern (exactly 0 where masked). Compared with
    :func:`~minitransformer.attention.scaled_dot_product_attention_backward` and with finite
    differences, gradient by gradient: ``grad_v`` first (it needs only the weights), then
    ``grad_q`` and ``grad_k``.

    Returns
    -------
    True when every case passes; False, with one printed line, when ``fn`` is still the stub.

    Raises
    ------
    CheckFailed
        Naming the likely mistake and the gradient it is in: a product not transposed
        (``weights @ g`` for dL/dv, ``dL/ds @ q`` for dL/dk), dL/dq and dL/dk swapped, the
        softmax's backward skipped or missing its diagonal term, the 1/sqrt(d_head) forgotten,
        replaced by 1/d or inverted, not a tuple of three, wrong shapes or dtype.
    """
    c = Checker(fn, "attention_backward", verbose)
    rng = np.random.default_rng(3)
    S_q, S_k, d, d_v = 3, 5, 4, 2
    causal = np.broadcast_to(causal_mask(4), (2, 2, 4, 4))
    cases = [
        ("3 queries, 5 keys, d_head 4, values of width 2", (S_q, S_k, d, d_v), None),
        ("a batch of 2 x 2 heads, 4 tokens, causal mask", (4, 4, d, 3), causal),
    ]
    for title, (n_q, n_k, width, width_v), mask in cases:
        lead = () if mask is None else mask.shape[:-2]
        q = rng.normal(size=(*lead, n_q, width))
        k = rng.normal(size=(*lead, n_k, width))
        v = rng.normal(size=(*lead, n_k, width_v))
        weights = masked_softmax(q @ k.swapaxes(-1, -2) / math.sqrt(width), mask)
        grad_out = rng.normal(size=(*lead, n_q, width_v))
        with c.case(title):
            got = _tuple_of(
                c,
                c.call({"grad_out": grad_out, "q": q, "k": k, "v": v, "weights": weights}),
                ("grad_q", "grad_k", "grad_v"),
            )
            expected = scaled_dot_product_attention_backward(grad_out, q, k, v, weights)
            mistakes = _attention_mistakes(grad_out, q, k, v, weights)

            numerics = numerical_gradients(partial(_attention, mask=mask), [q, k, v], grad_out)
            for which, name in [(2, "grad_v"), (0, "grad_q"), (1, "grad_k")]:
                numeric = numerics[which]
                c.compare(
                    got[which],
                    expected[which],
                    mistakes[name],
                    what=name,
                    shape_hints=_attention_shape_hints(name, q, k, v),
                    nonfinite_hint=_witness(numeric),
                    diagnose=_differs(got[which], expected[which], numeric, name),
                )
    return c.passed()


# ----------------------------------------------------------------------------- layer norm


def layer_norm_backward_variant(
    grad_out: np.ndarray,
    x: np.ndarray,
    gamma: np.ndarray,
    eps: float,
    *,
    mean_term: bool = True,
    variance_term: bool = True,
    use_gamma: bool = True,
    reduce: str = "mean",
    spread: str = "std",
) -> np.ndarray:
    """``dL/dx`` of layer norm with switches that reproduce classic mistakes.

    ``mean_term=False`` drops ``- mean(g_hat)`` (the mean treated as a constant);
    ``variance_term=False`` drops ``- x_hat * mean(g_hat * x_hat)`` (the std treated as a
    constant); ``use_gamma=False`` uses ``grad_out`` for ``g_hat``; ``reduce="sum"`` sums where
    the formula averages; ``spread="var"`` divides by ``var + eps`` instead of the std.
    """
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    std = np.sqrt(var + eps)
    x_hat = (x - mean) / std
    g_hat = grad_out * gamma if use_gamma else grad_out
    average = np.sum if reduce == "sum" else np.mean
    out = g_hat
    if mean_term:
        out = out - average(g_hat, axis=-1, keepdims=True)
    if variance_term:
        out = out - x_hat * average(g_hat * x_hat, axis=-1, keepdims=True)
    return out / (var + eps if spread == "var" else std)


def _layer_norm_mistakes(
    grad_out: np.ndarray, x: np.ndarray, gamma: np.ndarray, eps: float
) -> dict[str, list[Mistake]]:
    """The mistakes of each gradient of layer norm, by the gradient they show in."""
    x_hat, _, _ = normalize(x, eps)
    D = x.shape[-1]
    g, flat_g, flat_x_hat = grad_out, grad_out.reshape(-1, D), x_hat.reshape(-1, D)

    def variant(**switches: Any) -> np.ndarray:
        return layer_norm_backward_variant(grad_out, x, gamma, eps, **switches)

    formula = (
        "dL/dx = (g_hat - mean(g_hat) - x_hat * mean(g_hat * x_hat)) / std, "
        "with g_hat = dL/dy * gamma"
    )
    return {
        "grad_beta": [
            Mistake(
                "layer_norm_backward_gamma_beta_swapped",
                "Your dL/dbeta is the formula of dL/dgamma: y = gamma * x_hat + beta, so "
                "dL/dbeta = sum of dL/dy over the tokens and dL/dgamma = sum of dL/dy * x_hat.",
                (flat_g * flat_x_hat).sum(axis=0),
            ),
        ],
        "grad_gamma": [
            Mistake(
                "layer_norm_backward_gamma_beta_swapped",
                "Your dL/dgamma is the formula of dL/dbeta: y = gamma * x_hat + beta, so "
                "dL/dgamma = sum over the tokens of dL/dy * x_hat.",
                flat_g.sum(axis=0),
            ),
            Mistake(
                "layer_norm_backward_gamma_uses_x",
                "Your dL/dgamma multiplies dL/dy by the raw input x; gamma multiplies the "
                "*normalised* x_hat = (x - mean) / std, so dL/dgamma = sum of dL/dy * x_hat.",
                (g * x).reshape(-1, D).sum(axis=0),
            ),
        ],
        "grad_x": [
            Mistake(
                "layer_norm_backward_no_mean_term",
                "The mean term of layer norm's backward is missing: every input moves the "
                "mean, so subtract mean(g_hat) too. " + formula + ".",
                variant(mean_term=False),
            ),
            Mistake(
                "layer_norm_backward_no_variance_term",
                "The variance term is missing: every input moves the standard deviation, so "
                "subtract x_hat * mean(g_hat * x_hat) too. " + formula + ".",
                variant(variance_term=False),
            ),
            Mistake(
                "layer_norm_backward_constants",
                "You treated the mean and the standard deviation as constants (g_hat / std): "
                "both depend on every input of the token. " + formula + ".",
                variant(mean_term=False, variance_term=False),
            ),
            Mistake(
                "layer_norm_backward_no_gamma",
                "You forgot gamma: the normalised x_hat is multiplied by gamma on the way out, "
                "so the gradient reaching x_hat is g_hat = dL/dy * gamma. " + formula + ".",
                variant(use_gamma=False),
            ),
            Mistake(
                "layer_norm_backward_sums",
                f"You summed where the formula averages over the {D} features: the mean and "
                "the variance are averages, so their terms are too. " + formula + ".",
                variant(reduce="sum"),
            ),
            Mistake(
                "layer_norm_backward_divide_by_var",
                "You divided by the variance (plus eps); layer norm divides by the standard "
                "deviation, std = sqrt(var + eps), and so does its gradient. " + formula + ".",
                variant(spread="var"),
            ),
        ],
    }


@learner_check
def check_layer_norm_backward(fn: Callable[..., Any], *, verbose: bool = False) -> bool:
    """Check a learner's layer norm backward.

    Expected signature::

        layer_norm_backward(grad_out, x, gamma, eps=1e-5) -> (grad_x, grad_gamma, grad_beta)

    for ``y = gamma * (x - mean) / sqrt(var + eps) + beta`` over the last axis (biased
    variance); ``grad_gamma`` and ``grad_beta`` have shape (D,), summed over every token.
    Compared with :func:`~minitransformer.functional.layer_norm_backward` and with finite
    differences: ``grad_beta``, then ``grad_gamma``, then ``grad_x``.

    Returns
    -------
    True when every case passes; False, with one printed line, when ``fn`` is still the stub.

    Raises
    ------
    CheckFailed
        Naming the likely mistake: the mean term or the variance term left out (or both: the
        statistics treated as constants), gamma forgotten, sums for means, divided by the
        variance, dL/dgamma and dL/dbeta swapped or not summed over the tokens, dL/dgamma
        from x instead of x_hat, not a tuple of three, wrong shapes or dtype.
    """
    c = Checker(fn, "layer_norm_backward", verbose)
    rng = np.random.default_rng(7)
    cases = [
        ("3 tokens of width 6", (3, 6), 1e-5),
        ("a batch of 2 x 3 tokens of width 5, eps = 0.5", (2, 3, 5), 0.5),
    ]
    for title, shape, eps in cases:
        D = shape[-1]
        x = rng.normal(size=shape) * 2 + 1
        gamma = rng.uniform(0.5, 2.5, size=D) * rng.choice([-1, 1], size=D)
        beta = rng.normal(size=D)
        grad_out = rng.normal(size=shape)
        with c.case(title):
            got = _tuple_of(
                c,
                c.call({"grad_out": grad_out, "x": x, "gamma": gamma}, {"eps": eps}),
                ("grad_x", "grad_gamma", "grad_beta"),
            )
            x_hat, _, std = normalize(x, eps)
            expected = layer_norm_backward(grad_out, x_hat, std, gamma)
            mistakes = _layer_norm_mistakes(grad_out, x, gamma, eps)
            numeric = numerical_gradients(partial(layer_norm, eps=eps), [x, gamma, beta], grad_out)
            summed = (
                "Your {name} has one row per token: gamma and beta are shared by every token, "
                "so their gradients are summed over all of them: shape ({D},)."
            )
            for which, name in [(2, "grad_beta"), (1, "grad_gamma"), (0, "grad_x")]:
                c.compare(
                    got[which],
                    expected[which],
                    mistakes[name],
                    what=name,
                    shape_hints={
                        shape: summed.format(name=name, D=D),
                        (int(np.prod(shape[:-1])), D): summed.format(name=name, D=D),
                    },
                    nonfinite_hint=_witness(numeric[which]),
                    diagnose=_differs(got[which], expected[which], numeric[which], name),
                )
    return c.passed()


# ------------------------------------------------------------------------ one training step


def train_step_variant(
    model: Encoder,
    classifier: Classifier,
    batch: Batch,
    optimizer: AdamW,
    *,
    mistake: str = "",
) -> float:
    """One training step (forward, loss, backward, AdamW) with a switch for each classic
    mistake; ``mistake=""`` is right. Changes the parameters in place; returns the loss.

    ``mistake``: ``"no_step"`` (the optimiser never called), ``"twice"`` (called twice),
    ``"ascent"`` (the gradients negated), ``"sgd"`` (``param -= lr * grad`` by hand),
    ``"loss_after"`` (the loss returned is measured after the update), ``"no_mask"`` (the
    forward pass without the padding mask).
    """
    mask = np.ones_like(batch.mask) if mistake == "no_mask" else batch.mask
    loss, _, grads = loss_and_grads(
        model, classifier, Batch(batch.token_ids, mask, batch.targets), training=False
    )
    if mistake == "ascent":
        grads = {name: -g for name, g in grads.items()}
    if mistake == "sgd":
        for name, param in optimizer.params.items():
            param -= optimizer.lr * grads[name]
    elif mistake != "no_step":
        for _ in range(2 if mistake == "twice" else 1):
            optimizer.step(grads)
    if mistake == "loss_after":
        logits = classifier(model(batch.token_ids, batch.mask), batch.mask)
        loss = cross_entropy(logits, batch.targets)[0]
    return loss


def _flat(model: Encoder, classifier: Classifier) -> np.ndarray:
    """Every parameter of the encoder and the head in one vector, in :func:`parameters` order."""
    return np.concatenate([p.ravel() for p in parameters(model, classifier).values()])


def _step_setup() -> tuple[Encoder, Classifier, Batch, AdamW]:
    """A small float64 encoder and head, a padded batch, and an AdamW that took one step.

    The optimiser's first step is about ``lr * sign(grad)`` whatever the gradient's size, so
    the checked step is its second: a gradient off by a factor then shows.
    """
    config = EncoderConfig(
        vocab_size=12, d_model=16, n_heads=2, n_layers=1, d_ff=32, max_len=8, dtype="float64"
    )
    model = Encoder(config, seed=3)
    classifier = Classifier(16, 12, seed=4, dtype="float64")
    rng = np.random.default_rng(5)
    ids = rng.integers(1, 12, size=(4, 6))
    mask = np.ones((4, 6), dtype=bool)
    mask[1, 4:] = mask[3, 3:] = False  # two sequences end in padding
    ids[~mask] = 0
    targets = np.where(mask, rng.integers(0, 12, size=(4, 6)), -100)
    batch = Batch(ids, mask, targets)
    optimizer = AdamW(parameters(model, classifier), lr=0.01)
    train_step_variant(model, classifier, batch.select(slice(0, 2)), optimizer)  # a first step
    return model, classifier, batch, optimizer


@learner_check
def check_train_step(fn: Callable[..., Any], *, verbose: bool = False) -> bool:
    """Check a learner's training step: forward, loss, backward through the library, AdamW.

    Expected signature::

        train_step(model, classifier, batch, optimizer) -> float

    The step runs ``model`` and ``classifier`` on ``batch`` (with its padding mask), takes the
    cross-entropy of ``batch.targets``, backpropagates it through the head and the encoder
    (``classifier.backward``, ``model.backward``), and calls ``optimizer.step(grads)`` once
    with the gradient of every parameter, named as in
    :func:`~minitransformer.training.parameters` (the head's with the prefix ``"head."``). It
    returns the loss measured *before* the update.

    Returns
    -------
    True when the case passes; False, with one printed line, when ``fn`` is still the stub.

    Raises
    ------
    CheckFailed
        Naming the likely mistake: no update, two updates, gradient ascent, a plain SGD step
        instead of the optimiser's, the loss measured after the update, the padding mask left
        out, a missing gradient (the optimiser's error), a result that is not one number.
    """
    c = Checker(fn, "train_step", verbose)
    model, classifier, batch, optimizer = _step_setup()
    with c.case("a padded batch of 4 sequences, AdamW's second step"):

        def step_and_read(model, classifier, batch, optimizer):  # noqa: ANN001, ANN202
            loss = fn(model, classifier, batch, optimizer)
            return loss, _flat(model, classifier)

        result = c.call(
            {"model": model, "classifier": classifier, "batch": batch, "optimizer": optimizer},
            target=step_and_read,
            error_hint=(
                "optimizer.step(grads) needs the gradient of every parameter it holds: the "
                "encoder's, from `model.backward(trace, grad_hidden, batch.token_ids).params`, "
                'and the head\'s, from `classifier.backward`, under the names "head.W" and '
                '"head.b".'
            ),
        )
        loss, params_after = result
        got_loss = c.number(loss, "loss")
        outcomes = {}
        for mistake in ("", "no_step", "twice", "ascent", "sgd", "loss_after", "no_mask"):
            m, h, b, o = copy.deepcopy((model, classifier, batch, optimizer))
            loss_value = train_step_variant(m, h, b, o, mistake=mistake)
            outcomes[mistake] = (np.asarray(loss_value), _flat(m, h))
        loss_mistakes = [
            Mistake(
                "train_step_loss_after_update",
                "Your loss is measured after the update; return the loss of the forward pass "
                "that the gradients came from, before `optimizer.step`.",
                outcomes["loss_after"][0],
            ),
            Mistake(
                "train_step_no_mask",
                "Your loss is that of the batch without its padding mask: pass `batch.mask` to "
                "`model.run_with_trace` and to the classifier, so that padding is not attended "
                "to (its targets are -100, ignored by the loss).",
                outcomes["no_mask"][0],
            ),
        ]
        c.compare(got_loss, outcomes[""][0], loss_mistakes, what="loss")
        param_mistakes = [
            Mistake(
                "train_step_no_update",
                "The parameters did not change: call `optimizer.step(grads)` once the "
                "gradients are computed (it updates model.params and classifier.params in "
                "place).",
                outcomes["no_step"][1],
            ),
            Mistake(
                "train_step_two_updates",
                "The parameters moved twice as far as one step: `optimizer.step` was called "
                "twice. One training step is one update.",
                outcomes["twice"][1],
            ),
            Mistake(
                "train_step_gradient_ascent",
                "The parameters moved uphill: the gradients were negated. The optimiser "
                "subtracts what it is given, so pass the gradients as they are.",
                outcomes["ascent"][1],
            ),
            Mistake(
                "train_step_plain_sgd",
                "You updated the parameters by hand (`param -= lr * grad`); this step is "
                "AdamW's: pass the gradients to `optimizer.step(grads)`, which keeps the "
                "running means and the weight decay.",
                outcomes["sgd"][1],
            ),
            Mistake(
                "train_step_no_mask",
                "Your update is that of the batch without its padding mask: pass `batch.mask` "
                "to the forward pass.",
                outcomes["no_mask"][1],
            ),
        ]
        c.compare(
            c.array(params_after, "parameters"),
            outcomes[""][1],
            param_mistakes,
            what="parameters after the step (every parameter in one vector)",
        )
    return c.passed()
