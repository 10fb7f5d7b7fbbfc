"""``check_layer_norm``: the axis, the biased variance, and where epsilon goes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from minitransformer.functional import layer_norm
from minitransformer.testing.checker import Checker, Mistake, learner_check

AXIS_ERROR_HINT = (
    "Normalise over the last axis with `axis=-1` (and `keepdims=True`), which works for any "
    "number of leading axes; a fixed axis such as `axis=2` fails on a 2-D input."
)


def layer_norm_variant(
    x: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    eps: float,
    *,
    axis: int | tuple[int, ...] | None = -1,
    ddof: int = 0,
    eps_inside: bool = True,
    centre: bool = True,
    divide_by: str = "std",
    affine: str = "gamma_beta",
) -> np.ndarray:
    """Layer norm with switches that reproduce classic mistakes; the defaults are right.

    ``axis`` is the axis (or axes, or None for all) of the mean and variance; ``ddof=1`` gives
    the unbiased variance; ``eps_inside=False`` computes ``std + eps``; ``centre=False``
    skips subtracting the mean; ``divide_by="var"`` divides by the variance; ``affine`` is
    ``"gamma_beta"`` (right), ``"none"`` or ``"swapped"``.
    """
    with np.errstate(all="ignore"):
        mean = x.mean(axis=axis, keepdims=True)
        centred = x - mean if centre else x
        n = x.size // mean.size  # how many numbers each mean was taken over
        var = ((x - mean) ** 2).sum(axis=axis, keepdims=True) / (n - ddof)
        spread = np.sqrt(var + eps) if eps_inside else np.sqrt(var) + eps
        if divide_by == "var":
            spread = var + eps
        x_hat = centred / spread
    if affine == "none":
        return x_hat
    if affine == "swapped":
        return x_hat * beta + gamma
    return x_hat * gamma + beta


def _mistakes(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float, with_eps: bool
) -> list[Mistake]:
    """Every classic mistake on this input; ``with_eps`` adds those about epsilon (which only
    a token of variance comparable to eps can tell apart)."""

    def variant(**settings: Any) -> np.ndarray:
        return layer_norm_variant(x, gamma, beta, settings.pop("eps", eps), **settings)

    mistakes = [
        Mistake(
            "layer_norm_wrong_axis",
            f"You normalised over axis {axis} instead of the last axis: layer norm makes each "
            "token vector (the last axis, d_model) mean 0 and variance 1. Use "
            "`x.mean(axis=-1, keepdims=True)` and `x.var(axis=-1, keepdims=True)`."
            + (" (Normalising over the batch axis is batch norm.)" if axis == 0 else ""),
            variant(axis=axis),
        )
        for axis in range(x.ndim - 1)
    ]
    eps_hint = "`eps` goes inside the square root: `(x - mean) / np.sqrt(var + eps)`."
    if with_eps:
        mistakes += [
            Mistake(
                "layer_norm_no_eps",
                "You left out epsilon: a constant token has variance 0, and without epsilon "
                "you divide 0 by 0 (NaN). " + eps_hint,
                variant(eps=0.0),
            ),
            Mistake(
                "layer_norm_eps_outside_sqrt",
                "You added epsilon outside the square root (`std + eps`, as the Annotated "
                "Transformer does); PyTorch and this toolkit put it inside: "
                "`(x - mean) / np.sqrt(var + eps)`.",
                variant(eps_inside=False),
            ),
            *[
                Mistake(
                    "layer_norm_ignores_eps",
                    f"Your function ignored the `eps={eps}` it was given and used its own "
                    f"(about {own:g}): use the `eps` argument.",
                    variant(eps=own),
                )
                for own in (1e-5, 1e-6, 1e-8, 1e-12)
            ],
        ]
    return mistakes + [
        Mistake(
            "layer_norm_wrong_axis",
            "You took the mean and variance of the whole array: layer norm normalises each "
            "token vector separately, over the last axis (`axis=-1, keepdims=True`).",
            variant(axis=None),
        ),
        Mistake(
            "layer_norm_unbiased_variance",
            "You used the unbiased variance (dividing by D - 1, e.g. `np.std(x, ddof=1)` or "
            "torch's `x.var()`): layer norm divides by D, the biased variance, which is "
            "`np.var`'s default.",
            variant(ddof=1),
        ),
        Mistake(
            "layer_norm_not_centred",
            "You did not subtract the mean: x_hat = (x - mean) / sqrt(var + eps).",
            variant(centre=False),
        ),
        Mistake(
            "layer_norm_divided_by_variance",
            "You divided by the variance; divide by the standard deviation, sqrt(var + eps).",
            variant(divide_by="var"),
        ),
        Mistake(
            "layer_norm_no_affine",
            "You return the normalised x without the learned scale and shift: finish with "
            "`gamma * x_hat + beta`.",
            variant(affine="none"),
        ),
        Mistake(
            "layer_norm_gamma_beta_swapped",
            "You swapped gamma and beta: gamma scales (`gamma * x_hat`), beta shifts (`+ beta`).",
            variant(affine="swapped"),
        ),
    ]


@learner_check
def check_layer_norm(fn: Callable[..., Any], *, verbose: bool = False) -> bool:
    """Check a learner's layer normalisation on cases built to expose classic mistakes.

    Expected signature::

        layer_norm(x, gamma, beta, eps=1e-5) -> ndarray of the same shape as x

    ``gamma * (x - mean) / sqrt(var + eps) + beta``, the mean and the *biased* variance (divide
    by D, as ``np.var`` does by default and ``torch.nn.LayerNorm`` does) taken over the last
    axis, ``eps`` inside the square root; x of shape (..., D), gamma and beta of shape (D,).
    ``eps`` is always passed by keyword.

    Parameters
    ----------
    fn : callable
        The learner's function.
    verbose : bool
        Print a line for every case that passes.

    Returns
    -------
    True when every case passes; False, with one printed line, when ``fn`` is still the stub.

    Raises
    ------
    CheckFailed
        Naming the likely mistake: normalised over the wrong axis (or the whole array), the
        unbiased variance (ddof=1), no epsilon (NaN on a constant token), epsilon outside the
        square root or ignored, no centring, divided by the variance, gamma and beta ignored
        or swapped, wrong shape, type or dtype, modified inputs.
    """
    c = Checker(fn, "layer_norm", verbose)
    rng = np.random.default_rng(2016)
    gamma, beta = rng.uniform(0.5, 2.0, size=6), rng.normal(size=6)

    eps = 1e-2
    # A constant token, a token of variance 0.005 (comparable to eps), an ordinary one.
    x1 = np.array([[2.0, 2.0, 2.0, 2.0], [1.0, 1.1, 0.9, 1.0], [0.0, 3.0, -1.0, 2.0]])
    g1, b1 = gamma[:4], beta[:4]
    with c.case(f"x (3, 4) with a constant token and a nearly constant one, eps={eps}"):
        got = c.array(
            c.call({"x": x1, "gamma": g1, "beta": b1}, {"eps": eps}, error_hint=AXIS_ERROR_HINT)
        )
        c.compare(
            got,
            layer_norm(x1, g1, b1, eps),
            _mistakes(x1, g1, b1, eps, with_eps=True),
            nonfinite_hint="A constant token has variance 0: add `eps` inside the square root.",
        )

    x = rng.normal(size=(2, 3, 6)) * np.array([1.0, 3.0, 0.5])[:, None] + np.arange(3)[:, None]
    with c.case("x (2, 3, 6), eps=1e-5"):
        got = c.array(
            c.call(
                {"x": x, "gamma": gamma, "beta": beta}, {"eps": 1e-5}, error_hint=AXIS_ERROR_HINT
            )
        )
        c.compare(got, layer_norm(x, gamma, beta, 1e-5), _mistakes(x, gamma, beta, 1e-5, False))

    x32 = rng.normal(size=(1, 4, 8)).astype(np.float32) * 3 + 1
    g32, b32 = (rng.normal(size=8).astype(np.float32) for _ in range(2))
    with c.case("float32 input x (1, 4, 8)", float32=True):
        got = c.array(c.call({"x": x32, "gamma": g32, "beta": b32}, {"eps": 1e-5}))
        x64, g64, b64 = (a.astype(np.float64) for a in (x32, g32, b32))
        c.compare(got, layer_norm(x64, g64, b64, 1e-5), _mistakes(x64, g64, b64, 1e-5, False))

    return c.passed()
