"""``check_scaled_dot_product_attention``: scaling, softmax axis and every way to get a mask wrong.

Also home of :func:`attend`, attention with a switch for each classic mistake, which the
multi-head and encoder-block checks reuse to compute what a mistake would have produced.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from minitransformer.attention import causal_mask, scaled_dot_product_attention
from minitransformer.functional import masked_softmax, softmax
from minitransformer.testing.checker import Checker, Mistake, learner_check

# ---------------------------------------------------------------- attention, with mistakes


def attend(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    scale: float | None = None,
    axis: int = -1,
    mask_mode: str = "keep",
    fully_masked: str = "zeros",
) -> tuple[np.ndarray, np.ndarray]:
    """``softmax(q k^T * scale, masked) @ v``, with switches that reproduce classic mistakes.

    With the defaults this is the right answer. ``scale`` defaults to ``1/sqrt(d_head)``;
    ``axis`` is the softmax axis; ``mask_mode`` is one of ``"keep"`` (True = may attend,
    right), ``"ignored"``, ``"inverted"``, ``"transposed"`` (rows instead of columns),
    ``"zero_fill"`` (masked scores set to 0), ``"after_softmax"`` (weights zeroed, not
    renormalised) or ``"nan_product"`` (``(1 - mask) * -inf``); ``fully_masked`` is what a
    query with no allowed key gets: ``"zeros"`` (right), ``"nan"`` (-inf fill), ``"uniform"``
    (-1e9 fill) or ``"additive"`` (-1e9 added: the row's softmax is as if unmasked).

    Returns
    -------
    out : ndarray of shape (..., S_q, Dv)
    weights : ndarray of shape (..., S_q, S_k)
    """
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    scores = (q @ k.swapaxes(-1, -2)) * scale  # (..., S_q, S_k)
    with np.errstate(all="ignore"):
        weights = _masked_weights(scores, mask, axis, mask_mode, fully_masked)
        return weights @ v, weights


def _masked_weights(
    scores: np.ndarray, mask: np.ndarray | None, axis: int, mask_mode: str, fully_masked: str
) -> np.ndarray:
    if mask is None or mask_mode == "ignored":
        return softmax(scores, axis=axis)
    if mask_mode == "transposed":
        mask = mask.swapaxes(-1, -2)
    allowed = np.broadcast_to(mask, scores.shape)
    if mask_mode == "inverted":
        allowed = ~allowed
    if mask_mode == "zero_fill":
        return softmax(np.where(allowed, scores, 0.0))
    if mask_mode == "after_softmax":
        return softmax(scores) * allowed
    if mask_mode == "nan_product":
        return softmax(scores + (1.0 - allowed) * -np.inf)
    if fully_masked == "nan":
        return softmax(np.where(allowed, scores, -np.inf))
    if fully_masked == "uniform":
        return softmax(np.where(allowed, scores, -1e9))
    if fully_masked == "additive":
        return softmax(scores + np.where(allowed, 0.0, -1e9))
    return masked_softmax(scores, allowed)


# ------------------------------------------------------------------- the mask mistakes

MASK_NAN_HINT = (
    "With a mask, NaN usually comes from `0 * -inf` (e.g. `(1 - mask) * -np.inf`) or from "
    "`-inf - (-inf)`: use `np.where(mask, scores, -np.inf)` and a softmax that subtracts the "
    "row maximum."
)
MASK_ERROR_HINT = (
    "The mask is a bool array, True where a query may attend to a key. NumPy refuses `-mask` "
    "and `True - mask` on booleans: flip it with `~mask`, apply it with "
    "`np.where(mask, scores, -np.inf)`."
)
_FULLY_MASKED_FIX = (
    "This toolkit returns zeros for such a row, as PyTorch's F.scaled_dot_product_attention "
    "does: a query with nothing to attend to reads nothing. Guard it after the softmax, e.g. "
    "`weights = np.where(mask.any(axis=-1, keepdims=True), weights, 0.0)`."
)
# (name, hint, attend() settings) of each way to get a mask wrong. A mistake that leaves a
# query with no allowed key appears three times, once per way of treating such a row.
_MASK_MISTAKES: list[tuple[str, str, dict[str, str]]] = [
    (
        "mask_ignored",
        "Your output is what you get with no mask at all: the mask was not used. Before the "
        "softmax, give the forbidden keys a score of -inf: `np.where(mask, scores, -np.inf)`.",
        {"mask_mode": "ignored"},
    ),
    *[
        (
            "mask_inverted",
            "Your weights go to exactly the keys the mask forbids. Here True (or 1) means "
            "'may attend', as in PyTorch's F.scaled_dot_product_attention and Hugging Face; "
            "you probably treated True as 'masked' (the convention of PyTorch's "
            "nn.MultiheadAttention), or added a large positive number instead of a large "
            "negative one. Use `np.where(mask, scores, -np.inf)`.",
            {"mask_mode": "inverted", "fully_masked": convention},
        )
        for convention in ("zeros", "nan", "uniform", "additive")
    ],
    *[
        (
            "mask_transposed",
            "You masked queries (rows) instead of keys (columns): mask[..., i, j] says "
            "whether query i may attend to key j, so a padding token must disappear as a "
            "key, from every row. Did you transpose the mask or swap its last two axes?",
            {"mask_mode": "transposed", "fully_masked": convention},
        )
        for convention in ("zeros", "nan", "uniform", "additive")
    ],
    (
        "mask_zero_fill",
        "You set the masked scores to 0, but exp(0) = 1 still gives those keys weight. Set "
        "them to -inf (`np.where(mask, scores, -np.inf)`) so that exp gives exactly 0.",
        {"mask_mode": "zero_fill"},
    ),
    (
        "mask_after_softmax",
        "You zeroed the masked weights after the softmax, so the rows no longer sum to 1. "
        "Mask the scores before the softmax (set them to -inf) and the allowed keys share "
        "all the weight.",
        {"mask_mode": "after_softmax"},
    ),
    (
        "mask_nan",
        "Every entry of your output is NaN. A common cause: an additive mask built as "
        "`(1 - mask) * -np.inf` (0 * -inf is NaN in floating point), or adding +inf instead "
        "of -inf. Use `np.where(mask, scores, -np.inf)`.",
        {"mask_mode": "nan_product"},
    ),
]
_FULLY_MASKED_MISTAKES: list[tuple[str, str, dict[str, str]]] = [
    (
        "fully_masked_nan",
        "A query that may attend to no key gets NaN from your function: every one of its "
        "weights is 0 (scores of -inf, or weights zeroed after the softmax), and dividing by "
        "their sum computes 0 / 0. " + _FULLY_MASKED_FIX,
        {"fully_masked": "nan"},
    ),
    (
        "fully_masked_uniform",
        "A query that may attend to no key gets the plain average of all the values from "
        "your function: a large finite fill such as -1e9 gives that row uniform weights (as "
        "Hugging Face BERT does). " + _FULLY_MASKED_FIX,
        {"fully_masked": "uniform"},
    ),
    (
        "fully_masked_additive",
        "A query that may attend to no key gets the same output from your function as with "
        "no mask: adding the same large negative number (such as -1e9) to every score of a "
        "row changes nothing in its softmax. " + _FULLY_MASKED_FIX,
        {"fully_masked": "additive"},
    ),
]


def mask_mistakes(
    compute: Callable[..., Any], fully_masked_rows: bool = False
) -> list[tuple[str, str, Any]]:
    """``(name, hint, result)`` of every mask mistake.

    ``compute(**settings)`` runs the reference with :func:`attend` settings (``mask_mode``,
    ``fully_masked``) and returns its result; ``fully_masked_rows`` adds the mistakes about
    queries that may attend to no key (only meaningful when the case has such a query).
    """
    specs = _MASK_MISTAKES + (_FULLY_MASKED_MISTAKES if fully_masked_rows else [])
    mistakes = []
    for name, hint, settings in specs:
        try:
            mistakes.append((name, hint, compute(**settings)))
        except ValueError:  # a transposed mask of a non-square case does not even broadcast
            continue
    return mistakes


def scale_mistakes(
    compute: Callable[..., tuple[np.ndarray, np.ndarray]], d_head: int
) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """``(name, hint, output, weights)`` of forgetting or botching the 1/sqrt(d_head) scale."""
    return [
        (
            "no_scaling",
            "You did not scale the scores: divide q k^T by sqrt(d_head), the square root of "
            "the queries' width (Vaswani et al. 2017, section 3.2.1). Without it, the softmax "
            "saturates as heads get wider.",
            *compute(scale=1.0),
        ),
        (
            "scale_by_d",
            "You divided the scores by d_head; divide by its square root, sqrt(d_head).",
            *compute(scale=1.0 / d_head),
        ),
    ]


# --------------------------------------------------------------- outputs and weights


def output_and_weights(
    c: Checker, result: Any, out_shape: tuple[int, ...], weights_shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Accept ``output`` or a tuple ``(output, weights, ...)``; return (output, weights or None)."""
    if not isinstance(result, tuple):
        return c.array(result), None
    if len(result) == 0:
        raise c.fail(f"Your {c.name} returned an empty tuple.", "returned_list")
    out = c.array(result[0])
    if len(result) < 2 or not isinstance(result[1], np.ndarray):
        return out, None
    weights = c.array(result[1], "weights")
    if out.shape == weights_shape and weights.shape == out_shape and out_shape != weights_shape:
        raise c.fail(
            f"Your {c.name} returns (weights, output): return the output first, then the "
            "weights, as `return out, weights`.",
            "swapped_returns",
        )
    return out, weights


def compare_attention(
    c: Checker,
    result: Any,
    expected: tuple[np.ndarray, np.ndarray],
    mistakes: list[tuple[str, str, np.ndarray, np.ndarray]],
    scores: np.ndarray,
    shape_hints: dict[tuple[int, ...], str] | None = None,
    nonfinite_hint: str = "",
    diagnose: Callable[[], tuple[str, str] | None] | None = None,
) -> None:
    """Compare the output (and the weights, if returned) with the right ones and the mistakes.

    ``diagnose`` is passed on to :meth:`Checker.compare` for the output.
    """
    out, weights = output_and_weights(c, result, expected[0].shape, expected[1].shape)
    c.compare(
        out,
        expected[0],
        [Mistake(name, hint, m_out) for name, hint, m_out, _ in mistakes],
        shape_hints=shape_hints,
        nonfinite_hint=nonfinite_hint,
        diagnose=diagnose,
    )
    if weights is not None and weights.shape == expected[1].shape:
        are_scores = Mistake(
            "weights_are_scores",
            "Your output is right, but the second value you return is the scores before the "
            "softmax; return the weights (after the softmax) instead.",
            scores,
        )
        weight_mistakes = [are_scores] + [Mistake(n, h, m_w) for n, h, _, m_w in mistakes]
        c.compare(
            weights, expected[1], weight_mistakes, what="weights", nonfinite_hint=nonfinite_hint
        )


# ------------------------------------------------------------------------------ the check

TRANSPOSE_HINT = (
    "If you wrote `k.T`: on arrays with more than 2 axes `.T` reverses *all* the axes. "
    "Swap only the last two: `k.swapaxes(-1, -2)` (or `np.swapaxes(k, -1, -2)`)."
)


@learner_check
def check_scaled_dot_product_attention(
    fn: Callable[..., Any], *, masked: bool = True, verbose: bool = False
) -> bool:
    """Check a learner's scaled dot-product attention on cases built to expose classic mistakes.

    Expected signature::

        scaled_dot_product_attention(q, k, v, mask=None) -> out
                                                         or (out, weights, ...)

    or, with ``masked=False``, ``scaled_dot_product_attention(q, k, v)``

    with q of shape (..., S_q, d_head), k (..., S_k, d_head), v (..., S_k, d_v) and ``mask``
    a bool array broadcastable to (..., S_q, S_k), **True where a query may attend to a key**.
    ``out = softmax(q k^T / sqrt(d_head), masked) @ v`` has shape (..., S_q, d_v). If you
    return a tuple, its first entry is the output and its second, if an array, the weights
    (..., S_q, S_k), which are checked too (further entries, such as scores, are ignored). A
    query that may attend to no key must get an output (and weights) of zeros, as in
    PyTorch's ``F.scaled_dot_product_attention``. The mask is passed only in the masked cases.

    Parameters
    ----------
    fn : callable
        The learner's function.
    masked : bool
        Run the masked cases too. With False (before masks are taught) only the unmasked
        cases run, and ``fn`` is always called as ``fn(q, k, v)``.
    verbose : bool
        Print a line for every case that passes.

    Returns
    -------
    True when every case passes; False, with one printed line, when ``fn`` is still the stub.

    Raises
    ------
    CheckFailed
        Naming the likely mistake: no scaling, scaling by d instead of sqrt(d), by the width of
        v or by the number of keys, softmax over the queries or a fixed axis, no softmax,
        ``.T`` on batched arrays, no ``mask`` argument, a mask ignored, inverted (True =
        masked, or +inf added), applied to queries instead of keys, filled with 0, applied
        after the softmax, or turned into NaN; NaN or uniform rows for fully masked queries;
        outputs returned in the wrong order; wrong shape, type or dtype; modified inputs.
    """
    c = Checker(fn, "scaled_dot_product_attention", verbose)
    rng = np.random.default_rng(2017)

    q, k, v = rng.normal(size=(3, 8)), rng.normal(size=(4, 8)), rng.normal(size=(4, 5))
    with c.case("q (3, 8), k (4, 8), v (4, 5), no mask"):
        _compare_unmasked(c, c.call({"q": q, "k": k, "v": v}), q, k, v)

    qb, kb, vb = (rng.normal(size=(2, 3, 4, 8)) for _ in range(3))
    with c.case("a batch: q, k, v of shape (2, 3, 4, 8), no mask"):
        result = c.call({"q": qb, "k": kb, "v": vb}, error_hint=TRANSPOSE_HINT)
        _compare_unmasked(c, result, qb, kb, vb, fixed_axis=1)

    qs, ks, vs = (rng.normal(size=(4, 6)) for _ in range(3))
    qc, kc, vc = (rng.normal(size=(2, 2, 4, 6)) for _ in range(3))
    if masked:
        padding = np.array([[True, True, False, False]] * 4)  # keys 2 and 3 are padding
        with c.case("self-attention with padding: mask (4, 4), keys 2 and 3 masked"):
            _compare_masked(c, qs, ks, vs, padding)

        with c.case("a causal mask of shape (1, 1, 4, 4) on a (2, 2, 4, 6) batch"):
            _compare_masked(c, qc, kc, vc, causal_mask(4)[None, None])

        blocked = np.array([[False] * 4, [True, False, True, False], [True, True, True, False]])
        with c.case("query 0 may attend to no key: mask (3, 4) with row 0 all False"):
            _compare_masked(c, q, k, v, blocked, fully_masked_rows=True)

    q32, k32, v32 = (a[:, :2].astype(np.float32) for a in (qb, kb, vb))
    with c.case("float32 inputs of shape (2, 2, 4, 8)", float32=True):
        result = c.call({"q": q32, "k": k32, "v": v32}, error_hint=TRANSPOSE_HINT)
        q64, k64, v64 = (a.astype(np.float64) for a in (q32, k32, v32))
        _compare_unmasked(c, result, q64, k64, v64)

    return c.passed()


def _compare_unmasked(
    c: Checker,
    result: Any,
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    fixed_axis: int | None = None,
) -> None:
    def compute(**settings: Any) -> tuple[np.ndarray, np.ndarray]:
        return attend(q, k, v, **settings)

    scores = q @ k.swapaxes(-1, -2) / math.sqrt(q.shape[-1])
    mistakes = scale_mistakes(compute, q.shape[-1])
    if v.shape[-1] != q.shape[-1]:
        mistakes.append(
            (
                "scale_by_d_v",
                "You scaled the scores by the width of v; scale by 1/sqrt(d_head), with "
                "d_head = q.shape[-1], the width of the queries and keys.",
                *compute(scale=1.0 / math.sqrt(v.shape[-1])),
            )
        )
    if k.shape[-2] != q.shape[-1]:
        mistakes.append(
            (
                "scale_by_seq_len",
                "You scaled the scores by the number of keys (`k.shape[-2]`); scale by "
                "1/sqrt(d_head), with d_head = `q.shape[-1]`, the width of the queries and keys.",
                *compute(scale=1.0 / math.sqrt(k.shape[-2])),
            )
        )
    mistakes.append(
        (
            "softmax_over_queries",
            "Your weights sum to 1 over the queries instead of over the keys: apply the "
            "softmax along the last axis (`axis=-1`) of the (..., S_q, S_k) scores.",
            *compute(axis=-2),
        )
    )
    if fixed_axis is not None:
        mistakes.append(
            (
                "softmax_fixed_axis",
                f"Your softmax runs over axis {fixed_axis}, which is the last axis only for "
                "2-D arrays: use `axis=-1` so that batched inputs work too.",
                *compute(axis=fixed_axis),
            )
        )
    expected = scaled_dot_product_attention(q, k, v)
    mistakes.append(
        (
            "no_softmax",
            "You skipped the softmax: weights = softmax(scores), then out = weights @ v.",
            scores @ v,
            scores,
        )
    )
    weights_shape = expected[1].shape
    hints = {
        weights_shape: "That is the shape of the weights (queries, keys): return "
        "`weights @ v`, of shape (queries, d_v)."
    }
    compare_attention(c, result, expected[:2], mistakes, scores, hints)


def _compare_masked(
    c: Checker,
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    mask: np.ndarray,
    fully_masked_rows: bool = False,
) -> None:
    if not _takes_mask(c.fn, q, k, v, mask):
        raise c.fail(
            f"Your {c.name} takes no `mask` argument. Give it one, "
            f"`def {c.name}(q, k, v, mask=None):`, True where a query may attend to a key; "
            "or, if masks have not been taught yet, run the check without the masked cases: "
            f"`check_{c.check}({c.name}, masked=False)`.",
            "no_mask_argument",
        )
    result = c.call({"q": q, "k": k, "v": v}, {"mask": mask}, error_hint=MASK_ERROR_HINT)

    def compute(**settings: Any) -> tuple[np.ndarray, np.ndarray]:
        return attend(q, k, v, mask, **settings)

    out, weights, scores = scaled_dot_product_attention(q, k, v, mask)
    mistakes = [(name, hint, *r) for name, hint, r in mask_mistakes(compute, fully_masked_rows)]
    nonfinite_hint = _FULLY_MASKED_MISTAKES[0][1] if fully_masked_rows else MASK_NAN_HINT
    compare_attention(c, result, (out, weights), mistakes, scores, nonfinite_hint=nonfinite_hint)


def _takes_mask(
    fn: Callable[..., Any], q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray
) -> bool:
    """Whether ``fn(q, k, v, mask=mask)`` fits the signature of ``fn`` (True if unknowable)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # some callables (builtins) have no signature to inspect
        return True
    try:
        signature.bind(q, k, v, mask=mask)
    except TypeError:
        return False
    return True
