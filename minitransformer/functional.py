"""The elementwise and per-token math of a transformer, as pure functions on NumPy arrays.

Each function takes arrays, returns arrays, and keeps no state. Shapes use B = batch,
S = sequence length, D = d_model, F = d_ff; ``...`` means any leading axes. The signature of
each carries a comment ``# in -> out`` with its shapes.

The encoder runs these very functions. Where it keeps intermediates (:func:`layer_norm`'s
mean, std and normalised input), a function takes a ``record`` callback (:data:`Record`):
called with each intermediate under its trace name, it returns the value the computation goes
on with, so a trace can keep it and a patch can replace it.

Attention itself lives in :mod:`minitransformer.attention`, positional encodings in
:mod:`minitransformer.positional`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from minitransformer import kernels
from minitransformer.validation import NonFiniteError

#: A recorder: ``record(name, value)`` is called with every named intermediate of a computation
#: and returns the value the computation continues with -- the value itself, or a replacement
#: (activation patching). The encoder's recorder keeps them in its trace.
Record = Callable[[str, np.ndarray], np.ndarray]


def record_nothing(name: str, value: np.ndarray) -> np.ndarray:
    """The recorder of a computation nobody watches: keeps nothing, changes nothing."""
    return value


# ----------------------------------------------------------------------------- softmax


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:  # (..., n) -> (..., n)
    """Numerically stable softmax: ``exp(x - max(x)) / sum(exp(x - max(x)))`` along ``axis``.

    Subtracting the row maximum changes nothing mathematically (it cancels in the ratio) but
    keeps ``exp`` from overflowing: the largest exponent is ``exp(0) = 1``.

    Parameters
    ----------
    x : ndarray of shape (..., n)
    axis : int
        The axis that sums to 1 (for attention: the key axis, -1).

    Returns
    -------
    ndarray of the same shape as ``x``; every slice along ``axis`` is non-negative and sums to 1.
    """
    e = x - x.max(axis=axis, keepdims=True)
    np.exp(e, out=e)
    e /= e.sum(axis=axis, keepdims=True)
    return e


def softmax_backward(
    grad_out: np.ndarray, weights: np.ndarray, axis: int = -1
) -> np.ndarray:  # dL/dw (..., n), w (..., n) -> dL/dx (..., n)
    """Gradient of :func:`softmax`: ``dL/dx = w * (g - sum(g * w))`` along ``axis``.

    With ``w = softmax(x)``, the Jacobian of one slice is ``dw_i/dx_j = w_i (delta_ij - w_j)``,
    so ``dL/dx_j = sum_i g_i w_i (delta_ij - w_j) = w_j (g_j - sum_i g_i w_i)``: each entry's
    upstream gradient minus the weighted average of all of them, scaled by its own weight.

    Parameters
    ----------
    grad_out : ndarray of shape (..., n)
        ``g = dL/dw``, the gradient of the loss with respect to the softmax output.
    weights : ndarray of shape (..., n)
        ``w``, the softmax output of the forward pass.
    axis : int
        The axis the forward softmax normalised.

    Returns
    -------
    ndarray of shape (..., n): ``dL/dx``.
    """
    weighted_mean = (grad_out * weights).sum(axis=axis, keepdims=True)  # (..., 1)
    return weights * (grad_out - weighted_mean)


def masked_softmax(
    scores: np.ndarray, mask: np.ndarray | None, name: str = "scores"
) -> np.ndarray:  # (..., S_q, S_k), mask -> (..., S_q, S_k)
    """Softmax over the last axis, giving exactly 0 to the entries where ``mask`` is False.

    A row whose entries are all masked gets all zeros (never NaN): it has nothing to
    attend to, so it reads nothing. PyTorch's ``nn.MultiheadAttention`` returns NaN for such
    a row and Hugging Face BERT returns a uniform row; ``F.scaled_dot_product_attention``
    returns zeros, as we do.

    Finite scores always give finite weights: subtracting the row maximum makes the largest
    exponent ``exp(0) = 1``, and a difference too negative for the dtype only rounds to
    ``exp(-inf) = 0``. A row whose visible scores hold +inf or NaN (or are all -inf) has no
    meaningful softmax -- ``inf - inf`` is NaN -- so it raises instead of returning NaN. We
    raise rather than invent weights (e.g. uniform over the inf entries): an infinite score
    means the arithmetic before the softmax already overflowed, and any pattern drawn from it
    would not be the model's.

    Parameters
    ----------
    scores : ndarray of shape (..., S_q, S_k)
        Attention scores; masked entries may hold anything (they are never read).
    mask : bool ndarray broadcastable to ``scores.shape``, or None
        True where a query may attend to a key (the Hugging Face / PyTorch SDPA convention).
        None means nothing is masked.
    name : str
        What ``scores`` is (a trace name such as ``"blocks.0.attn.scores"``), for the error.

    Returns
    -------
    ndarray of the same shape as ``scores``: rows sum to 1 (or are all 0 when fully masked).

    Raises
    ------
    NonFiniteError
        If a row that may attend to some key has an infinite or NaN score there, naming
        ``name`` and the first such row.
    """
    if mask is not None and mask.all():
        mask = None  # nothing is masked: the plain softmax
    x = scores if mask is None else np.where(mask, scores, -np.inf)  # exp(-inf) = 0
    fully_masked: np.ndarray | None = None  # (..., S_q, 1): True where a query sees no key
    if mask is not None:
        fully_masked = np.logical_not(mask.any(axis=-1, keepdims=True))
    if kernels.handles(x):  # speed: the lines below as compiled passes over the rows
        weights, row_max = kernels.softmax(x)
        _check_row_max(name, row_max, fully_masked)
        return weights
    row_max = x.max(axis=-1, keepdims=True)  # (..., S_q, 1)
    _check_row_max(name, row_max, fully_masked)
    if fully_masked is not None:
        row_max = np.where(fully_masked, 0.0, row_max)  # a fully masked row has max -inf
    e = x - row_max
    np.exp(e, out=e)
    total = e.sum(axis=-1, keepdims=True)
    if fully_masked is None:
        e /= total
        return e
    return e / np.where(fully_masked, 1.0, total)  # 0 / 1 = 0 for a fully masked row


def _check_row_max(name: str, row_max: np.ndarray, fully_masked: np.ndarray | None) -> None:
    """Raise if a row that may attend somewhere has a non-finite maximum (+inf, NaN, or -inf
    everywhere it may look). Reads only the (..., S_q, 1) maxima: costs nothing measurable."""
    bad = ~np.isfinite(row_max)
    if fully_masked is not None:
        bad &= ~fully_masked  # -inf is the right maximum of a row with nothing to attend to
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0][:-1])
        dtype = row_max.dtype
        raise NonFiniteError(
            f"{name}: {int(bad.sum())} row(s) have an infinite or NaN score among the keys "
            f"they may attend to (the first is row {first}), so their softmax is undefined. "
            f"The scores overflowed {dtype} (largest {float(np.finfo(dtype).max):.3g}), or "
            "inf/NaN reached this layer from its input: smaller query/key weights or "
            "inputs, or dtype='float64', keep them finite"
        )


def masked_softmax_backward(
    grad_out: np.ndarray, weights: np.ndarray
) -> np.ndarray:  # dL/dweights, weights (..., S_q, S_k) -> dL/dscores
    """Gradient of :func:`masked_softmax` with respect to the scores.

    The same formula as :func:`softmax_backward`, ``dL/dscores = w * (g - sum(g * w))`` over
    the last axis, and it needs no mask: a masked entry has ``w = 0``, so its gradient is 0
    (the output does not depend on a masked score), and a fully masked row has ``w = 0``
    everywhere, so the whole row's gradient is 0 (its output is the constant 0).

    Parameters
    ----------
    grad_out : ndarray of shape (..., S_q, S_k)
        ``dL/dweights``.
    weights : ndarray of shape (..., S_q, S_k)
        The output of :func:`masked_softmax` (exactly 0 where masked).

    Returns
    -------
    ndarray of shape (..., S_q, S_k): ``dL/dscores``, exactly 0 at masked entries.
    """
    return softmax_backward(grad_out, weights, axis=-1)


# -------------------------------------------------------------------------- layer norm


def standardize(
    x: np.ndarray, eps: float, name: str = "x"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # (..., D) -> (..., D), (..., 1), (..., 1)
    """The first half of :func:`layer_norm`: each token vector to mean 0 and variance 1.

    ``normed = (x - mean) / std`` with ``std = sqrt(var + eps)``, the (biased) variance taken
    over the last axis, and ``eps`` inside the square root (as ``torch.nn.LayerNorm``).

    Parameters
    ----------
    x : ndarray of shape (..., D)
    eps : float
    name : str
        What ``x`` is (a trace name such as ``"blocks.0.ln1"``), for the error.

    Returns
    -------
    normed : ndarray of shape (..., D)
    mean : ndarray of shape (..., 1)
    std : ndarray of shape (..., 1)

    Raises
    ------
    NonFiniteError
        If a token vector holds inf or NaN, or its variance overflows the dtype (then
        ``normed`` would silently be 0): checked on the (..., 1) std, at no measurable cost.
    """
    if kernels.handles(x):  # speed: the same three lines as one compiled pass per token vector
        normed, mean, std = kernels.standardize(x, eps)
        _check_std(name, std)
        return normed, mean, std
    mean = x.mean(axis=-1, keepdims=True)  # (..., 1)
    centred = x - mean  # (..., D)
    var = (centred * centred).mean(axis=-1, keepdims=True)  # biased: divide by D, not D - 1
    std = np.sqrt(var + eps)  # (..., 1)
    _check_std(name, std)
    normed = np.divide(centred, std, out=centred)  # in place: centred is not needed after
    return normed, mean, std


def _check_std(name: str, std: np.ndarray) -> None:
    """Raise if a token vector's std is inf or NaN (its input held inf or NaN, or its variance
    overflowed). Reads only the (..., 1) std: costs nothing measurable."""
    if not np.isfinite(std).all():
        first = tuple(int(i) for i in np.argwhere(~np.isfinite(std))[0][:-1])
        raise NonFiniteError(
            f"{name}: the LayerNorm input has inf or NaN, or a variance beyond "
            f"{float(np.finfo(std.dtype).max):.3g} (the largest {std.dtype}), in "
            f"{int(np.count_nonzero(~np.isfinite(std)))} token vector(s) (the first at "
            f"{first}): values overflowed before this point (weights too large for {std.dtype}; "
            "in training, often a learning rate too high)"
        )


def layer_norm(
    x: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    eps: float,
    *,
    record: Record = record_nothing,
    name: str = "ln",
) -> np.ndarray:  # (..., D), (D,), (D,) -> (..., D)
    """Layer normalisation (Ba et al. 2016): ``gamma * (x - mean) / sqrt(var + eps) + beta``.

    Each token vector is standardised to mean 0 and variance 1 (``normed``,
    :func:`standardize`), then scaled and shifted by the learned ``gamma`` and ``beta``.

    Parameters
    ----------
    x : ndarray of shape (..., D)
    gamma, beta : ndarray of shape (D,)
        Learned scale and shift.
    eps : float
        Added to the variance inside the square root.
    record : function (name, array) -> array, optional
        Called with ``{name}.mean`` (..., 1), ``{name}.std`` (..., 1), ``{name}.normed`` and
        ``{name}.out`` (..., D); the computation continues with what it returns for
        ``normed`` and ``out`` (see :data:`Record`). Default: record nothing.
    name : str
        The LayerNorm's trace name (e.g. ``"blocks.0.ln1"``), for ``record`` and the error.

    Returns
    -------
    ndarray of shape (..., D)

    Raises
    ------
    NonFiniteError
        As :func:`standardize`.
    """
    normed, mean, std = standardize(x, eps, name)
    record(f"{name}.mean", mean)  # kept for the backward pass; not read back
    record(f"{name}.std", std)
    normed = record(f"{name}.normed", normed)  # (..., D)
    out = normed * gamma  # (..., D)
    out += beta  # in place: one new array, not two
    return record(f"{name}.out", out)


def layer_norm_backward(
    grad_out: np.ndarray, normed: np.ndarray, std: np.ndarray, gamma: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # (..., D), (..., D), (..., 1), (D,) -> ...
    """Gradients of :func:`layer_norm` from the normalised input and std of the forward pass.

    With ``out = gamma * normed + beta`` and ``normed = (x - mean) / std``, write
    ``g_hat = dL/dnormed = grad_out * gamma``. Differentiating the mean and the variance too::

        dL/dx     = (g_hat - mean(g_hat) - normed * mean(g_hat * normed)) / std
        dL/dgamma = sum over tokens of grad_out * normed
        dL/dbeta  = sum over tokens of grad_out

    the means taken over the last axis (D). The two subtracted terms remove what moving the
    mean and scaling the spread would have undone: the gradient is orthogonal to the
    all-ones vector and to ``normed``.

    Parameters
    ----------
    grad_out : ndarray of shape (..., D)
        ``dL/dout``.
    normed : ndarray of shape (..., D)
        The normalised input (``normed`` in the trace; x-hat in Ba et al.).
    std : ndarray of shape (..., 1)
        ``sqrt(var + eps)`` of each token (``std`` in the trace).
    gamma : ndarray of shape (D,)

    Returns
    -------
    grad_x : ndarray of shape (..., D)
    grad_gamma : ndarray of shape (D,)
    grad_beta : ndarray of shape (D,)
    """
    g_hat = grad_out * gamma  # (..., D)
    mean_g = g_hat.mean(axis=-1, keepdims=True)  # (..., 1)
    mean_gx = (g_hat * normed).mean(axis=-1, keepdims=True)  # (..., 1)
    grad_x = (g_hat - mean_g - normed * mean_gx) / std  # (..., D)
    D = grad_out.shape[-1]
    grad_gamma = (grad_out * normed).reshape(-1, D).sum(axis=0)  # (D,)
    grad_beta = grad_out.reshape(-1, D).sum(axis=0)  # (D,)
    return grad_x, grad_gamma, grad_beta


# ------------------------------------------------------------------------- activations


def relu(x: np.ndarray) -> np.ndarray:  # (...) -> (...)
    """``max(0, x)``, elementwise. Shape preserved."""
    return np.maximum(x, 0)


def relu_backward(
    grad_out: np.ndarray, x: np.ndarray
) -> np.ndarray:  # dL/dout (...), x (...) -> dL/dx (...)
    """Gradient of :func:`relu`: ``dL/dx = g * (x > 0)``.

    The derivative is 1 where the input was positive and 0 where it was negative. At exactly
    0 relu has no derivative; we use 0 there, as PyTorch does.

    Parameters
    ----------
    grad_out : ndarray
        ``g = dL/drelu(x)``.
    x : ndarray of the same shape
        The input of the forward pass (``ffn.pre`` in the trace).

    Returns
    -------
    ndarray of the same shape: ``dL/dx``.
    """
    return grad_out * (x > 0)


# Rational approximations of erf (Hart & Cheney, "Computer Approximations", 1968, #5667 for
# erfc), accurate to double precision. Coefficients from the lowest power up.
_ERF_P = (
    0.804373630960840172832162e5,
    0.740407142710151470082064e4,
    0.301782788536507577809226e4,
    0.380140318123903008244444e2,
    0.143383842191748205576712e2,
    -0.288805137207594084924010e0,
    0.007547728033418631287834e0,
)
_ERF_Q = (
    0.804373630960840172826266e5,
    0.342165257924628539769006e5,
    0.637960017324428279487120e4,
    0.658070155459240506326937e3,
    0.380190713951939403753468e2,
    1.0,
)
_ERFC_P = (
    0.18263348842295112592168999e4,
    0.28980293292167655611275846e4,
    0.2320439590251635247384768711e4,
    0.1143262070703886173606073338e4,
    0.3685196154710010637133875746e3,
    0.7708161730368428609781633646e2,
    0.9675807882987265400604202961e1,
    0.5641877825507397413087057563e0,
)
_ERFC_Q = (
    0.18263348842295112595576438e4,
    0.495882756472114071495438422e4,
    0.60895424232724435504633068e4,
    0.4429612803883682726711528526e4,
    0.2094384367789539593790281779e4,
    0.6617361207107653469211984771e3,
    0.1371255960500622202878443578e3,
    0.1714980943627607849376131193e2,
    1.0,
)


def _polynomial(coefficients: tuple[float, ...], x: np.ndarray) -> np.ndarray:
    """``c0 + c1 x + c2 x^2 + ...`` by Horner's rule, in the dtype of ``x``."""
    result = x * coefficients[-1]
    result += coefficients[-2]
    for c in reversed(coefficients[:-2]):
        result *= x
        result += c
    return result


def erf(x: np.ndarray) -> np.ndarray:  # (...) -> (...)
    """The error function ``erf(x) = 2/sqrt(pi) * integral_0^x exp(-t^2) dt``, elementwise.

    NumPy has no erf, so we evaluate classical approximations, chosen by dtype:

    * float64: the rational approximations of Hart & Cheney (1968) — for ``|x| < 0.5``,
      ``erf(x) = 2/sqrt(pi) x P(x^2)/Q(x^2)``; above, ``erf(x) = sign(x) (1 - erfc(|x|))`` with
      ``erfc(a) = exp(-a^2) P(a)/Q(a)``. Accurate to about 2e-16.
    * float32: Abramowitz & Stegun 7.1.26, ``erf(a) = 1 - t (a1 + a2 t + ... + a5 t^4)
      exp(-a^2)`` with ``t = 1 / (1 + p a)``. Absolute error below 1e-6 (a few float32
      rounding steps near 1), and several times cheaper.

    Parameters
    ----------
    x : ndarray of any shape, float32 or float64

    Returns
    -------
    ndarray of the same shape and dtype.
    """
    x = np.asarray(x)
    if x.dtype == np.float32:
        y = _erfc_float32(np.abs(x))
        np.subtract(1.0, y, out=y)  # erf(|x|) = 1 - erfc(|x|)
        return np.copysign(y, x, out=y)  # erf is odd
    return _erf_float64(x)


def _erf_float64(x: np.ndarray) -> np.ndarray:
    a = np.abs(x)
    small = a < 0.5
    result = np.empty_like(x, dtype=np.result_type(x, np.float64))

    xs = x[small]
    xs2 = xs * xs
    result[small] = (
        (2 / math.sqrt(math.pi)) * xs * _polynomial(_ERF_P, xs2) / _polynomial(_ERF_Q, xs2)
    )

    large = ~small
    al = np.minimum(a[large], 10.0)  # erfc(10) ~ 2e-45: beyond it, erf is exactly +-1
    erfc = np.exp(-al * al) * _polynomial(_ERFC_P, al) / _polynomial(_ERFC_Q, al)
    result[large] = np.copysign(1.0 - erfc, x[large])
    return result


_AS_P = 0.3275911
_AS_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def _erfc_float32(a: np.ndarray) -> np.ndarray:  # a >= 0
    # Written with in-place operations: each temporary of a (B, S, F) activation is megabytes.
    t = a * _AS_P
    t += 1.0
    np.divide(1.0, t, out=t)  # t = 1 / (1 + p a)
    series = _polynomial(_AS_A, t)
    series *= t  # a1 t + a2 t^2 + ... + a5 t^5
    with np.errstate(over="ignore"):  # a^2 is inf above 1.8e19, and exp(-inf) = 0 is right
        exp = np.square(a)
    np.negative(exp, out=exp)
    np.exp(exp, out=exp)  # exp(-a^2)
    series *= exp
    return series  # erfc(a) = 1 - erf(a)


#: Entries per block in :func:`in_blocks` (256 KB of float32: fits in a core's L2 cache).
BLOCK_SIZE = 65536


def in_blocks(
    fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray
) -> np.ndarray:  # fn, (...) -> (...)
    """Apply the elementwise function ``fn`` to ``x`` one block of entries at a time.

    The result is exactly ``fn(x)``. Why bother: NumPy runs each operation over the whole
    array before starting the next, so a formula of 20 operations on a 6 MB activation makes
    20 trips to main memory. On blocks of :data:`BLOCK_SIZE` entries every intermediate stays
    in the CPU cache, and the exact GELU of a (8, 128, 1536) activation runs twice as fast.

    Parameters
    ----------
    fn : function of an ndarray, elementwise (each output entry depends on its input entry)
    x : ndarray of any shape

    Returns
    -------
    ndarray of the same shape as ``x``, of ``fn``'s dtype.
    """
    flat = x.reshape(-1)  # a view when x is contiguous
    if flat.size <= BLOCK_SIZE:
        return fn(x)
    out = np.empty_like(flat)
    for start in range(0, flat.size, BLOCK_SIZE):
        block = slice(start, start + BLOCK_SIZE)
        out[block] = fn(flat[block])
    return out.reshape(x.shape)


def gelu(x: np.ndarray) -> np.ndarray:  # (...) -> (...)
    """Exact GELU (Hendrycks & Gimpel 2016), as BERT and ``torch.nn.GELU()`` use.

    ``gelu(x) = x * Phi(x) = 0.5 * x * (1 + erf(x / sqrt(2)))``, where Phi is the standard
    normal CDF. Shape and dtype preserved. For speed it is evaluated :func:`in_blocks`, or in
    float32 with numba installed as one compiled loop whose erf is a rational function of x
    (:mod:`~minitransformer.kernels`; the two agree to 1e-6 times ``max(1, |x|)``).
    """
    x = np.asarray(x)
    if kernels.handles(x):  # speed: the formula as one compiled loop, erf without exp
        return kernels.gelu(x)
    return in_blocks(_gelu, x)


def _gelu(x: np.ndarray) -> np.ndarray:
    y = erf(x * (1 / math.sqrt(2)))
    y += 1.0
    y *= x
    y *= 0.5  # in place: 0.5 * x * (1 + erf(x / sqrt(2))) without more temporaries
    return y


def gelu_backward(
    grad_out: np.ndarray, x: np.ndarray
) -> np.ndarray:  # dL/dout (...), x (...) -> dL/dx (...)
    """Gradient of the exact :func:`gelu`: ``dL/dx = g * (Phi(x) + x * phi(x))``.

    By the product rule on ``x * Phi(x)``, with ``Phi(x) = 0.5 (1 + erf(x / sqrt(2)))`` the
    standard normal CDF and ``phi(x) = exp(-x^2 / 2) / sqrt(2 pi)`` its density.

    Parameters
    ----------
    grad_out : ndarray
        ``g = dL/dgelu(x)``.
    x : ndarray of the same shape
        The input of the forward pass (``ffn.pre`` in the trace).

    Returns
    -------
    ndarray of the same shape: ``dL/dx``.
    """
    cdf = 0.5 * (1.0 + erf(x * (1 / math.sqrt(2))))  # Phi(x)
    pdf = np.exp(-0.5 * x * x) * (1 / math.sqrt(2 * math.pi))  # phi(x)
    return grad_out * (cdf + x * pdf)


def gelu_tanh(x: np.ndarray) -> np.ndarray:  # (...) -> (...)
    """The tanh approximation of GELU (GPT-2; ``torch.nn.GELU(approximate="tanh")``).

    ``0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))``. Shape and dtype preserved.
    """
    inner = math.sqrt(2 / math.pi) * (x + 0.044715 * x * x * x)
    return 0.5 * x * (1.0 + np.tanh(inner))


def gelu_tanh_backward(
    grad_out: np.ndarray, x: np.ndarray
) -> np.ndarray:  # dL/dout (...), x (...) -> dL/dx (...)
    """Gradient of :func:`gelu_tanh`.

    With ``u = sqrt(2/pi) (x + 0.044715 x^3)`` and ``t = tanh(u)``, the product rule on
    ``0.5 x (1 + t)`` and ``dt/du = 1 - t^2`` give::

        dL/dx = g * (0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2))

    Parameters
    ----------
    grad_out : ndarray
        ``g = dL/dgelu_tanh(x)``.
    x : ndarray of the same shape
        The input of the forward pass (``ffn.pre`` in the trace).

    Returns
    -------
    ndarray of the same shape: ``dL/dx``.
    """
    c = math.sqrt(2 / math.pi)
    t = np.tanh(c * (x + 0.044715 * x * x * x))
    du_dx = c * (1.0 + 3 * 0.044715 * x * x)
    return grad_out * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du_dx)


ACTIVATIONS = {"relu": relu, "gelu": gelu, "gelu_tanh": gelu_tanh}

#: The backward of each activation, ``(grad_out, x) -> dL/dx``, under the same names.
ACTIVATION_BACKWARDS = {
    "relu": relu_backward,
    "gelu": gelu_backward,
    "gelu_tanh": gelu_tanh_backward,
}


# ------------------------------------------------------------------------------ linear


def linear(
    x: np.ndarray, W: np.ndarray, b: np.ndarray | None = None
) -> np.ndarray:  # (..., d_in), (d_in, d_out), (d_out,) -> (..., d_out)
    """Affine map ``x @ W + b`` with the weight stored (d_in, d_out), as in the equations.

    Parameters
    ----------
    x : ndarray of shape (..., d_in)
    W : ndarray of shape (d_in, d_out)
    b : ndarray of shape (d_out,) or None

    Returns
    -------
    ndarray of shape (..., d_out)

    Notes
    -----
    PyTorch's ``nn.Linear`` stores its weight the other way round, (d_out, d_in), and computes
    ``x @ weight.T + bias``; copy weights across with a transpose.
    """
    y = (x.reshape(-1, W.shape[0]) @ W).reshape(*x.shape[:-1], W.shape[1])  # one big matmul
    if b is not None:
        y += b
    return y


def linear_backward(
    grad_out: np.ndarray, x: np.ndarray, W: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # (..., d_out), (..., d_in), W -> dx, dW, db
    """Gradients of :func:`linear`, ``y = x @ W + b``.

    ``dL/dx = g @ W^T``, and, summing over every leading (batch, sequence) axis because the
    same ``W`` and ``b`` serve every token, ``dL/dW = x^T @ g`` and ``dL/db = sum of g``.

    Parameters
    ----------
    grad_out : ndarray of shape (..., d_out)
        ``g = dL/dy``.
    x : ndarray of shape (..., d_in)
        The input of the forward pass.
    W : ndarray of shape (d_in, d_out)

    Returns
    -------
    grad_x : ndarray of shape (..., d_in)
    grad_W : ndarray of shape (d_in, d_out)
    grad_b : ndarray of shape (d_out,)
    """
    d_in, d_out = W.shape
    g = grad_out.reshape(-1, d_out)  # (tokens, d_out)
    grad_x = (g @ W.T).reshape(*grad_out.shape[:-1], d_in)  # (..., d_in)
    grad_W = x.reshape(-1, d_in).T @ g  # (d_in, tokens) @ (tokens, d_out) -> (d_in, d_out)
    grad_b = g.sum(axis=0)  # (d_out,)
    return grad_x, grad_W, grad_b


# ----------------------------------------------------------------------------- dropout


def dropout(
    x: np.ndarray, p: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:  # (...) -> out (...), keep (...)
    """Inverted dropout (Srivastava et al. 2014): zero each entry with probability ``p``.

    Kept entries are scaled by ``1 / (1 - p)`` so the expected value is unchanged, which is
    why nothing needs rescaling at evaluation time, when dropout is simply not applied.

    Parameters
    ----------
    x : ndarray of any shape
    p : float in [0, 1)
    rng : numpy.random.Generator

    Returns
    -------
    out : ndarray of the same shape as ``x``
    keep : bool ndarray of the same shape: True where the entry was kept.
    """
    keep = rng.random(x.shape) >= p
    return x * keep / (1.0 - p), keep


def dropout_backward(
    grad_out: np.ndarray, keep: np.ndarray, p: float
) -> np.ndarray:  # dL/dout (...), keep (...) -> dL/dx (...)
    """Gradient of :func:`dropout` given the mask it drew: ``dL/dx = g * keep / (1 - p)``.

    Dropout multiplies each entry by the constant ``keep / (1 - p)`` (0 or ``1 / (1 - p)``),
    so the gradient is multiplied by the same constants: dropped entries get no gradient.

    Parameters
    ----------
    grad_out : ndarray
        ``dL/dout``.
    keep : bool ndarray of the same shape
        The mask of the forward pass (the ``*dropout_mask`` names of a training trace).
    p : float
        The dropout probability of the forward pass.

    Returns
    -------
    ndarray of the same shape: ``dL/dx``.
    """
    return grad_out * keep / (1.0 - p)


# --------------------------------------------------------------------------- embedding


def embedding_backward(
    grad_out: np.ndarray, ids: np.ndarray, n_rows: int
) -> np.ndarray:  # dL/dout (B, S, D), ids (B, S) -> dL/dW (n_rows, D)
    """Gradient of an embedding lookup ``out = W[ids]`` with respect to the table ``W``.

    Row ``W[i]`` was copied to every position holding id ``i``, so its gradient is the sum of
    the gradients of those positions: ``dL/dW[i] = sum over (b, s) with ids[b, s] = i of
    g[b, s]``; rows of ids that never occur get 0. ``np.add.at`` does this scatter-add (plain
    ``grad[ids] += g`` would keep only one of the repeated ids' contributions).

    Parameters
    ----------
    grad_out : ndarray of shape (B, S, D)
        ``g = dL/dout``.
    ids : int ndarray of shape (B, S)
        The ids looked up in the forward pass.
    n_rows : int
        Rows of the table (the vocabulary size V).

    Returns
    -------
    ndarray of shape (n_rows, D): ``dL/dW``.
    """
    grad_W = np.zeros((n_rows, grad_out.shape[-1]), dtype=grad_out.dtype)  # (V, D)
    np.add.at(grad_W, ids, grad_out)
    return grad_W
