"""``check_softmax``: does the learner's softmax normalise the right axis, stably?

Also ``check_softmax_jacobian``: the derivative of one softmax row, ``diag(p) - p p^T``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from minitransformer.functional import softmax
from minitransformer.testing.checker import Checker, Mistake, learner_check

KEEPDIMS_HINT = (
    "A shape error in softmax usually means a `max` or `sum` without `keepdims=True`: "
    "`x.max(axis=-1)` has shape (rows,), which cannot be subtracted from a (rows, columns) "
    "array. Use `x.max(axis=-1, keepdims=True)`."
)


def _shifted_by(x: np.ndarray, shift: np.ndarray | float) -> np.ndarray:
    """``exp(x - shift) / sum(exp(x - shift))`` over the last axis, as written: overflow and all.

    ``shift`` is the row maximum in the right softmax, and something else in each mistake.
    """
    with np.errstate(all="ignore"):
        e = np.exp(x - shift)
        return e / e.sum(axis=-1, keepdims=True)


def _wrong_axis(x: np.ndarray, axis: int) -> Mistake:
    return Mistake(
        "softmax_wrong_axis",
        f"Your slices along the last axis do not sum to 1, but those along axis {axis} do: "
        f"you probably normalised over axis={axis}. Softmax must normalise over the last "
        "axis (for attention: over the keys), which is `axis=-1` whatever the number of "
        "axes; `axis=1` is the last axis only of a 2-D array.",
        softmax(x, axis=axis),
    )


def _whole_array(x: np.ndarray) -> Mistake:
    e = np.exp(x - x.max())
    return Mistake(
        "softmax_whole_array",
        "Your whole array sums to 1 instead of each row: you divided by `e.sum()` without an "
        "axis. Sum each row: `e.sum(axis=-1, keepdims=True)`.",
        e / e.sum(),
    )


def _missing_keepdims(x: np.ndarray) -> list[Mistake]:
    """A square x hides a missing ``keepdims``: the (n,) max or sum broadcasts along rows."""
    shifted = np.exp(x - x.max(axis=-1, keepdims=True))
    sum_hint = (
        "Each row is divided by another row's sum: without `keepdims=True`, `e.sum(axis=-1)` "
        f"has shape ({x.shape[0]},) and broadcasts along the columns of the {x.shape} array. "
        "Use `e.sum(axis=-1, keepdims=True)`."
    )
    max_hint = (
        "Each column is shifted by another row's maximum: without `keepdims=True`, "
        f"`x.max(axis=-1)` has shape ({x.shape[0]},) and broadcasts along the columns of the "
        f"{x.shape} array. Use `x.max(axis=-1, keepdims=True)`."
    )
    unshifted = np.exp(x - x.max(axis=-1))
    return [
        Mistake("softmax_missing_keepdims", sum_hint, shifted / shifted.sum(axis=-1)),
        Mistake("softmax_missing_keepdims", sum_hint, np.exp(x) / np.exp(x).sum(axis=-1)),
        Mistake("softmax_missing_keepdims", max_hint, softmax(x - x.max(axis=-1), axis=-1)),
        Mistake(
            "softmax_missing_keepdims",
            "Without `keepdims=True`, `x.max(axis=-1)` and `e.sum(axis=-1)` have shape "
            f"({x.shape[0]},) and broadcast along the columns of the {x.shape} array. Use "
            "`keepdims=True` in both.",
            unshifted / unshifted.sum(axis=-1),
        ),
    ]


@learner_check
def check_softmax(fn: Callable[..., Any], *, verbose: bool = False) -> bool:
    """Check a learner's softmax on cases built to expose the classic mistakes.

    Expected signature::

        softmax(x, axis=-1) -> ndarray of the same shape as x

    every slice along ``axis`` non-negative and summing to 1, computed stably (large inputs
    must not overflow), without modifying ``x``.

    Parameters
    ----------
    fn : callable
        The learner's function.
    verbose : bool
        Print a line for every case that passes.

    Returns
    -------
    True when every case passes (and prints ``✓ softmax: all 6 checks passed``); False, with
    one printed line, when ``fn`` is still the exercise stub (raises ``NotImplementedError``).

    Raises
    ------
    CheckFailed
        An ``AssertionError`` whose message names the likely mistake and shows an example:
        softmax over the wrong axis or the whole array, no exponential or no normalisation,
        the maximum subtracted in the numerator only,
        a ``max`` or ``sum`` without ``keepdims``, no max subtraction (NaN on large inputs),
        the max of the whole array, the row minimum or mean subtracted instead of the
        maximum (NaN when a row spans more than about 700), an ignored ``axis`` argument, a
        wrong type, dtype or shape, or a modified input.

    Examples
    --------
    >>> from minitransformer.functional import softmax
    >>> check_softmax(softmax)
    ✓ softmax: all 6 checks passed
    True
    """
    c = Checker(fn, "softmax", verbose)

    x = np.array(
        [[1.0, 2.0, 3.0, 0.5], [0.0, -1.0, 2.0, 1.0], [3.0, 3.0, 0.0, -2.0], [0.5, 1.5, -0.5, 2.5]]
    )
    with c.case("a (4, 4) matrix x, softmax(x)"):
        got = c.array(c.call({"x": x}, error_hint=KEEPDIMS_HINT))
        e = np.exp(x)
        c.compare(
            got,
            softmax(x),
            [
                _wrong_axis(x, 0),
                _whole_array(x),
                *_missing_keepdims(x),
                Mistake(
                    "softmax_not_normalised",
                    "Your rows do not sum to 1: you return exp(x) without dividing each row "
                    "by its sum.",
                    e,
                ),
                Mistake(
                    "softmax_shift_numerator_only",
                    "You subtracted the row maximum in the numerator but not in the sum: "
                    "exp(x - m) / sum(exp(x)) is the softmax times exp(-m), so the rows do not "
                    "sum to 1. Shift once and use the shifted exponentials in both places: "
                    "`e = np.exp(x - m); e / e.sum(axis=axis, keepdims=True)`.",
                    np.exp(x - x.max(axis=-1, keepdims=True)) / e.sum(axis=-1, keepdims=True),
                ),
                Mistake(
                    "softmax_no_exp",
                    "You divided x by its row sum without taking the exponential first: "
                    "softmax is exp(x) / sum(exp(x)), which is also never negative.",
                    x / x.sum(axis=-1, keepdims=True),
                ),
            ],
        )

    xb = np.linspace(-2.0, 2.0, 30).reshape(2, 3, 5) ** 2 * np.array([1.0, -0.5])[:, None, None]
    with c.case("a batch x of shape (2, 3, 5), softmax(x)"):
        got = c.array(c.call({"x": xb}, error_hint=KEEPDIMS_HINT))
        c.compare(got, softmax(xb), [_wrong_axis(xb, 0), _wrong_axis(xb, 1), _whole_array(xb)])

    big = np.array([[1000.0, 1001.0, 1002.0], [-1000.0, -999.0, -998.0], [0.0, 1.0, 2.0]])
    with c.case("large inputs (values near +1000 and -1000)"):
        got = c.array(c.call({"x": big}, error_hint=KEEPDIMS_HINT))
        row_max_hint = (
            "Subtract each row's maximum before exp: "
            "`np.exp(x - x.max(axis=-1, keepdims=True))`. This changes nothing "
            "mathematically (the factor cancels) but the largest exponent becomes exp(0) = 1."
        )
        c.compare(
            got,
            softmax(big),
            [
                Mistake(
                    "softmax_no_max_subtraction",
                    "Your output is NaN for large inputs: np.exp(1000) overflows to inf (and "
                    "np.exp(-1000) underflows to 0), then inf / inf and 0 / 0 are NaN. "
                    + row_max_hint,
                    _shifted_by(big, 0.0),
                ),
                Mistake(
                    "softmax_global_max",
                    "You subtracted the maximum of the whole array, not of each row: a row "
                    "far below that maximum underflows to exp(-2000) = 0, and 0 / 0 = NaN. "
                    + row_max_hint,
                    _shifted_by(big, float(big.max())),
                ),
            ],
            nonfinite_hint=row_max_hint,
        )

    # Rows that span far more than exp can bear (exp(710) = inf): only subtracting the row's
    # maximum keeps every exponent <= 0. Subtracting the minimum or the mean does not.
    spread = np.array([[0.0, 1000.0, 0.5], [-1e9, 0.0, 1.0], [-1000.0, 0.0, 1000.0]])
    with c.case("rows with a large spread, e.g. [0, 1000, 0.5] and [-1e9, 0, 1]"):
        got = c.array(c.call({"x": spread}, error_hint=KEEPDIMS_HINT))
        c.compare(
            got,
            softmax(spread),
            [
                Mistake(
                    "softmax_no_max_subtraction",
                    "Your output is NaN where a row holds a large number: np.exp(1000) "
                    "overflows to inf, and inf / inf is NaN. " + row_max_hint,
                    _shifted_by(spread, 0.0),
                ),
                Mistake(
                    "softmax_min_subtraction",
                    "You subtracted each row's minimum, not its maximum: the largest exponent "
                    "is then max - min, which overflows (np.exp(1000) = inf, and inf / inf is "
                    "NaN) as soon as a row spans more than about 700, as [0, 1000] does. "
                    + row_max_hint,
                    _shifted_by(spread, spread.min(axis=-1, keepdims=True)),
                ),
                Mistake(
                    "softmax_mean_subtraction",
                    "You subtracted each row's mean, not its maximum: the largest exponent is "
                    "then max - mean, which overflows (np.exp(1000) = inf, and inf / inf is "
                    "NaN) when a row spans more than about 1400, as [-1000, 0, 1000] does. "
                    + row_max_hint,
                    _shifted_by(spread, spread.mean(axis=-1, keepdims=True)),
                ),
                Mistake(
                    "softmax_global_max",
                    "You subtracted the maximum of the whole array, not of each row: a row "
                    "far below that maximum underflows to exp(-1e9) = 0, and 0 / 0 = NaN. "
                    + row_max_hint,
                    _shifted_by(spread, float(spread.max())),
                ),
            ],
            nonfinite_hint=row_max_hint,
        )

    x34 = x[:3]
    with c.case("softmax(x, axis=0) on a (3, 4) matrix: the axis argument is used"):
        got = c.array(
            c.call(
                {"x": x34},
                {"axis": 0},
                error_hint="check_softmax calls softmax(x, axis=...): give your function an "
                "`axis=-1` parameter and normalise over that axis.",
            )
        )
        c.compare(
            got,
            softmax(x34, axis=0),
            [
                Mistake(
                    "softmax_ignores_axis",
                    "Called with axis=0, your softmax still normalised over the last axis: "
                    "use the `axis` argument in both the max and the sum.",
                    softmax(x34, axis=-1),
                )
            ],
        )

    x32 = x[1:3].astype(np.float32)
    with c.case("float32 input", float32=True):
        got = c.array(c.call({"x": x32}))
        c.compare(got, softmax(x32.astype(np.float64)), [_wrong_axis(x32.astype(np.float64), 0)])

    return c.passed()


# ------------------------------------------------------------------ the softmax's Jacobian


@learner_check
def check_softmax_jacobian(fn: Callable[..., Any], *, verbose: bool = False) -> bool:
    """Check a learner's Jacobian of one softmax row, the matrix of every ``d p_i / d s_j``.

    Expected signature::

        softmax_jacobian(p) -> ndarray of shape (S, S)

    with ``p = softmax(s)`` of shape (S,) and ``J[i, j] = d p_i / d s_j = p_i (1[i = j] - p_j)``,
    i.e. ``J = diag(p) - p p^T``.

    Returns
    -------
    True when every case passes; False, with one printed line, when ``fn`` is still the stub.

    Raises
    ------
    CheckFailed
        Naming the likely mistake: the outer product left out (``diag(p)`` alone), the diagonal
        term left out (``-p p^T`` alone), only the diagonal ``p (1 - p)`` filled in, ``p @ p`` (a
        number) instead of ``np.outer(p, p)``, ``p * p`` (a row broadcast down the matrix), the
        sign flipped, wrong shape, type or dtype, a modified input.
    """
    c = Checker(fn, "softmax_jacobian", verbose)
    for title, s in [
        ("p = softmax([0.5, -1, 2, 0])", np.array([0.5, -1.0, 2.0, 0.0])),
        ("p = softmax of 6 random scores", np.random.default_rng(2024).normal(size=6) * 2),
        ("a saturated row: p almost one-hot", np.array([12.0, 0.0, -1.0])),
    ]:
        p = softmax(s)
        with c.case(title):
            got = c.array(c.call({"p": p}))
            outer = np.outer(p, p)
            c.compare(
                got,
                np.diag(p) - outer,
                [
                    Mistake(
                        "jacobian_no_outer",
                        "You returned diag(p) alone: the diagonal is right only in part, and "
                        "the off-diagonal entries -p_i p_j are missing. Raising s_j moves "
                        "weight away from every other entry too: J = diag(p) - p p^T.",
                        np.diag(p),
                    ),
                    Mistake(
                        "jacobian_no_diagonal",
                        "You returned -p p^T alone: the diagonal term diag(p), from d p_i / d s_i "
                        "= p_i - p_i^2, is missing. J = diag(p) - p p^T.",
                        -outer,
                    ),
                    Mistake(
                        "jacobian_diagonal_only",
                        "Only your diagonal p_i (1 - p_i) is right: the off-diagonal entries "
                        "d p_i / d s_j = -p_i p_j are not zero. J = diag(p) - p p^T.",
                        np.diag(p * (1 - p)),
                    ),
                    Mistake(
                        "jacobian_inner_product",
                        "You subtracted p @ p, a single number (the dot product), from every "
                        "entry; p p^T is the (S, S) outer product, `np.outer(p, p)`.",
                        np.diag(p) - p @ p,
                    ),
                    Mistake(
                        "jacobian_elementwise_square",
                        "You subtracted p * p, a vector that broadcasts along the rows, so row i "
                        "holds p_j^2; the outer product has p_i p_j: `np.outer(p, p)`.",
                        np.diag(p) - p * p,
                    ),
                    Mistake(
                        "jacobian_sign",
                        "Your Jacobian has the wrong sign: raising s_i raises p_i, so the "
                        "diagonal of J is positive. J = diag(p) - p p^T.",
                        outer - np.diag(p),
                    ),
                ],
                shape_hints={
                    p.shape: "The Jacobian is a matrix: entry [i, j] is d p_i / d s_j, for every "
                    "pair (i, j); p (1 - p) is only its diagonal."
                },
            )
    return c.passed()
