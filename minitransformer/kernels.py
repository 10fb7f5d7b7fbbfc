"""Compiled loops for GELU, LayerNorm and softmax in float32: for speed, not for reading.

NumPy runs a formula one operation at a time, and each operation is a pass through memory:
the exact GELU of a (8, 128, 1536) activation is about 20 passes over 6 MB, where PyTorch
runs it as one loop. With numba installed (``pip install "minitransformer[fast]"``), three
functions of :mod:`minitransformer.functional` hand their float32 work to the loops below,
compiled to machine code on first use (about a second, then cached on disk):

======================  ============================================================  =========
function                what the loop computes                                        speed-up
======================  ============================================================  =========
``gelu``                ``0.5 x (1 + erf(x / sqrt 2))``, with erf a rational function   ~9x
                        of x (no exp, so the loop is vectorised)
``standardize``         each token vector's mean, std and ``(x - mean) / std``          ~2.5x
(LayerNorm's first      in one pass per vector, sums in float64
half)
``masked_softmax``      each row's maximum, ``exp(x - max)`` (a polynomial times a      ~3x
                        power of 2), the sum and the division, one row at a time
======================  ============================================================  =========

Everything else, float64 always, and training (see :func:`switched_off`) is the NumPy code of
``functional.py``, the code to read. The loops agree with it to float32 rounding
(``tests/test_kernels.py``). Without numba, with the environment variable
``MINITRANSFORMER_KERNELS=0``, or after ``kernels.ENABLED = False``, NumPy computes everything.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace

import numpy as np

#: Whether the functions of ``functional.py`` may use the compiled loops (when numba is
#: installed). Set to False to run pure NumPy; ``MINITRANSFORMER_KERNELS=0`` starts it False.
ENABLED = os.environ.get("MINITRANSFORMER_KERNELS", "1") != "0"

F32 = np.float32
FLOAT32_MAX = float(np.finfo(np.float32).max)

# erf(a) ~ a P(a^2) / Q(a^2) for |a| <= 4, coefficients from the highest power down (the
# rational approximation of float erf in the Eigen library). Beyond 4, erf(a) = +-1 to float32
# precision (1 - erf(4) = 1.5e-8). Absolute error below 5e-7, evaluated in float32.
ERF_P = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
         -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
         -1.60960333262415e-02)  # fmt: skip
ERF_Q = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
         -7.37332916720468e-03, -1.42647390514189e-02)  # fmt: skip


def _gelu_loop(x: np.ndarray, out: np.ndarray) -> None:  # (n,) float32 -> (n,)
    for i in range(x.size):
        a = min(max(x[i] * F32(0.70710678), F32(-4.0)), F32(4.0))  # x / sqrt(2) in [-4, 4]
        a2 = a * a
        p = F32(ERF_P[0])
        for c in ERF_P[1:]:
            p = p * a2 + F32(c)
        q = F32(ERF_Q[0])
        for c in ERF_Q[1:]:
            q = q * a2 + F32(c)
        out[i] = F32(0.5) * x[i] * (F32(1.0) + a * p / q)  # 0.5 x (1 + erf(x / sqrt 2))


def _standardize_loop(
    x: np.ndarray, eps: float, normed: np.ndarray, mean: np.ndarray, std: np.ndarray
) -> None:  # (N, D) float32 -> normed (N, D), mean (N, 1), std (N, 1)
    D = x.shape[1]
    for n in range(x.shape[0]):
        total = 0.0  # float64 sums
        for j in range(D):
            total += x[n, j]
        mu = total / D
        squares = 0.0
        for j in range(D):
            squares += (x[n, j] - mu) ** 2
        var = squares / D  # biased variance
        if var > FLOAT32_MAX:  # as in NumPy's float32 arithmetic: the caller then raises
            var = np.inf
        sigma = np.sqrt(var + eps)  # eps inside the square root
        for j in range(D):
            normed[n, j] = (x[n, j] - mu) / sigma
        mean[n, 0] = mu
        std[n, 0] = sigma


# exp(d) for d <= 0 (a score minus its row's maximum) as 2^k * exp(r): k = round(d / ln 2) and
# r = d - k ln 2, so |r| <= ln(2) / 2, where a polynomial gives exp(r) (the Taylor series to
# r^7: relative error below 1e-8), and 2^k goes into the float's exponent bits. NumPy's exp
# is vectorised too, but only as a separate pass over the whole array.
LOG2_E = 1.4426950408889634  # 1 / ln 2
LN2_HIGH, LN2_LOW = 0.693359375, -2.12194440e-4  # ln 2 in two parts, so k * LN2_HIGH is exact
EXP_TAYLOR = (1 / 5040, 1 / 720, 1 / 120, 1 / 24, 1 / 6, 1 / 2, 1.0, 1.0)  # r^7 ... r^0
SMALLEST_POWER = -125  # 2^k * exp(r) is a normal float32 for k >= -125; smaller gives 0
INT32_MIN = -(2**31)


def _softmax_loop(x: np.ndarray, weights: np.ndarray, row_max: np.ndarray) -> None:
    # (N, S) float32 scores (masked ones -inf) -> weights (N, S), row_max (N, 1); row_max is
    # set to NaN where a row holds NaN
    S = x.shape[1]
    x_bits = x.view(np.int32)
    weight_bits = weights.view(np.int32)
    max_bits = row_max.view(np.int32)
    for n in range(x.shape[0]):
        # The row maximum, found on "order keys": the bits of a float32 read as an int32, with
        # the 31 low bits flipped when negative, are ordered as the floats are (NaN above
        # +inf). A maximum of ints is vectorised by the compiler; a maximum of floats is not.
        key = INT32_MIN
        for j in range(S):
            bits = x_bits[n, j]
            key = max(key, bits ^ ((bits >> 31) & 0x7FFFFFFF))
        max_bits[n, 0] = key ^ ((key >> 31) & 0x7FFFFFFF)  # the key back to float32 bits
        m = row_max[n, 0]
        if m == -np.inf:  # every key masked: all weights 0 (x - m would be NaN)
            weights[n, :] = 0
            continue
        nans = F32(0.0)  # a float count: an integer count of d != d is not vectorised
        for j in range(S):
            d = x[n, j] - m  # <= 0
            nans += F32(1.0) if d != d else F32(0.0)
            d = max(d, F32(-100.0))  # -inf (a masked key) to a number whose k fits an int32
            k = np.floor(d * F32(LOG2_E) + F32(0.5))
            r = d - k * F32(LN2_HIGH) - k * F32(LN2_LOW)
            e = F32(EXP_TAYLOR[0])
            for c in EXP_TAYLOR[1:]:
                e = e * r + F32(c)  # exp(r), Horner's rule
            weights[n, j] = e
            # times 2^k: k added to the exponent bits (a result below 2^-125 is 0)
            power = np.int32(k) << 23
            weight_bits[n, j] = weight_bits[n, j] + power if k >= SMALLEST_POWER else 0
        total = 0.0  # float64 sum
        for j in range(S):
            total += weights[n, j]
        if nans:  # NaN in the row: its maximum may have missed it, so flag it
            row_max[n, 0] = np.nan
        inverse = F32(1.0 / total)
        for j in range(S):
            weights[n, j] *= inverse


@functools.cache
def _compiled() -> SimpleNamespace | None:
    """The three loops compiled by numba (once per process; numba caches the machine code on
    disk), or None when numba is not installed."""
    try:
        import numba
    except ImportError:
        return None
    # "reassoc" lets sums be split across the lanes of a vector register, "contract" fuses
    # multiply-adds; no flag that assumes values are finite (inf and NaN must stay visible).
    compile_loop = numba.njit(
        fastmath={"reassoc", "contract", "nsz"}, error_model="numpy", cache=True
    )
    return SimpleNamespace(
        gelu=compile_loop(_gelu_loop),
        standardize=compile_loop(_standardize_loop),
        softmax=compile_loop(_softmax_loop),
    )


@contextmanager
def switched_off() -> Iterator[None]:
    """Inside the ``with`` block, NumPy computes everything; then :data:`ENABLED` is restored.

    Training runs inside it (:func:`~minitransformer.training.train_step`): a training run is
    chaotic -- a difference in the seventh digit can change the step at which a query stops
    being stuck -- so the loops, whose last digits differ from NumPy's, would make the same
    run differ with and without numba, and the notebooks' prose quotes such runs.
    """
    global ENABLED
    enabled, ENABLED = ENABLED, False
    try:
        yield
    finally:
        ENABLED = enabled


def handles(x: np.ndarray) -> bool:
    """True when a compiled loop computes on ``x``: enabled, numba installed, float32, and
    not empty."""
    return ENABLED and x.dtype == np.float32 and x.size > 0 and _compiled() is not None


def gelu(x: np.ndarray) -> np.ndarray:  # (...) float32 -> (...)
    """:func:`~minitransformer.functional.gelu` as one compiled loop (see the module doc)."""
    x = np.ascontiguousarray(x)
    out = np.empty_like(x)
    _loops().gelu(x.reshape(-1), out.reshape(-1))
    return out


def standardize(
    x: np.ndarray, eps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # (..., D) -> (..., D), (..., 1), (..., 1)
    """:func:`~minitransformer.functional.standardize` as one compiled pass per token vector:
    ``normed``, ``mean`` and ``std`` (the caller checks ``std`` for inf and NaN)."""
    rows = np.ascontiguousarray(x).reshape(-1, x.shape[-1])  # (N, D)
    normed = np.empty_like(rows)
    mean = np.empty((rows.shape[0], 1), rows.dtype)
    std = np.empty((rows.shape[0], 1), rows.dtype)
    _loops().standardize(rows, float(eps), normed, mean, std)
    return normed.reshape(x.shape), mean.reshape(*x.shape[:-1], 1), std.reshape(*x.shape[:-1], 1)


def softmax(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # (..., S) -> (..., S), (..., 1)
    """:func:`~minitransformer.functional.masked_softmax` after masking (masked scores are
    -inf): ``exp(x - max) / sum``, in one compiled loop over the rows that finds each row's
    maximum, its exponentials, their sum and the division while the row is in the cache.

    Returns the weights (a fully masked row is all zeros) and each row's maximum, which is
    +inf or NaN where the row holds +inf or NaN (for the caller's check, which then raises).
    """
    rows = np.ascontiguousarray(x).reshape(-1, x.shape[-1])  # (N, S)
    weights = np.empty_like(rows)
    row_max = np.empty((rows.shape[0], 1), rows.dtype)
    _loops().softmax(rows, weights, row_max)
    return weights.reshape(x.shape), row_max.reshape(*x.shape[:-1], 1)


def _loops() -> SimpleNamespace:
    loops = _compiled()
    if loops is None:
        raise RuntimeError("the compiled loops need numba: pip install 'minitransformer[fast]'")
    return loops
