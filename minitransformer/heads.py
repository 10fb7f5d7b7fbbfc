"""Heads on top of the encoder: a linear classifier and the cross-entropy loss that trains it.

The encoder turns token ids into hidden states ``(B, S, D)``; a *head* turns them into
predictions. One linear layer is enough for every toy task:

* **per-token classification** (``pooling="token"``): ``logits[b, s] = hidden[b, s] @ W + b``,
  one prediction per position (reverse, sort, twin, ...);
* **whole-sequence classification**: first pool the sequence into one vector, then classify
  it. ``pooling="first"`` takes the first token's vector (BERT's ``[CLS]``); ``pooling="mean"``
  averages the vectors of the real (unpadded) tokens.

Each forward function has its backward beside it, as in :mod:`minitransformer.functional`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from minitransformer.functional import linear, linear_backward
from minitransformer.inputs import as_mask
from minitransformer.validation import as_array, check_finite, check_int, check_option

POOLING_OPTIONS = ("token", "first", "mean")
IGNORE_INDEX = -100  # targets equal to this are skipped by the loss (PyTorch's default)


# ------------------------------------------------------------------------------ pooling


def pool(
    hidden: np.ndarray, mask: np.ndarray | None, pooling: str
) -> np.ndarray:  # (B, S, D), (B, S) -> (B, D), or (B, S, D) for "token"
    """Reduce the hidden states to what the classifier reads.

    Parameters
    ----------
    hidden : ndarray of shape (B, S, D)
    mask : bool ndarray of shape (B, S) or None
        True for real tokens; None means every token is real. Used by ``"mean"`` only.
    pooling : {"token", "first", "mean"}

    Returns
    -------
    ndarray of shape (B, S, D) for ``"token"`` (unchanged), else (B, D).
    """
    check_option("pooling", pooling, POOLING_OPTIONS)
    if pooling == "token":
        return hidden
    if pooling == "first":
        return hidden[:, 0]  # (B, D)
    if mask is None:
        return hidden.mean(axis=1)  # (B, D)
    _check_real_tokens(mask)
    weights = mask / mask.sum(axis=1, keepdims=True)  # (B, S): 1/n_real on real tokens, else 0
    return np.einsum("bs,bsd->bd", weights.astype(hidden.dtype), hidden)  # (B, D)


def pool_backward(
    grad_pooled: np.ndarray, mask: np.ndarray | None, pooling: str, seq_len: int
) -> np.ndarray:  # dL/dpooled, (B, S) -> dL/dhidden (B, S, D)
    """Gradient of :func:`pool` with respect to the hidden states.

    ``"first"`` sends the whole gradient to position 0; ``"mean"`` shares it equally among
    the ``n`` real tokens (each gets ``g / n``); padding gets 0.

    Parameters
    ----------
    grad_pooled : ndarray of shape (B, S, D) for "token", else (B, D)
    mask : bool ndarray of shape (B, S) or None
    pooling : {"token", "first", "mean"}
    seq_len : int
        S, the sequence length of the forward pass.

    Returns
    -------
    ndarray of shape (B, S, D): ``dL/dhidden``.
    """
    check_option("pooling", pooling, POOLING_OPTIONS)
    if pooling == "token":
        return grad_pooled
    B, D = grad_pooled.shape
    if pooling == "first":
        grad = np.zeros((B, seq_len, D), dtype=grad_pooled.dtype)
        grad[:, 0] = grad_pooled
        return grad
    if mask is None:
        mask = np.ones((B, seq_len), dtype=bool)
    _check_real_tokens(mask)
    weights = (mask / mask.sum(axis=1, keepdims=True)).astype(grad_pooled.dtype)  # (B, S)
    return weights[:, :, None] * grad_pooled[:, None, :]  # (B, S, D)


def _check_real_tokens(mask: np.ndarray) -> None:
    """Mean pooling divides by the number of real tokens: every sequence needs one."""
    empty = ~np.asarray(mask, dtype=bool).any(axis=1)
    if empty.any():
        raise ValueError(
            f"mask: sequence {int(np.argmax(empty))} has no real token; mean pooling needs one"
        )


# ---------------------------------------------------------------------------- classifier


class Classifier:
    """A linear classification head: pool the hidden states, then ``logits = x @ W + b``.

    Parameters
    ----------
    d_model : int
        Width of the hidden states it reads (``config.d_model``).
    n_classes : int
        Number of classes C.
    pooling : {"token", "first", "mean"}
        ``"token"``: one prediction per position; ``"first"``: one per sequence from the first
        token; ``"mean"``: one per sequence from the mean over real tokens.
    seed : int
        Seed of the initial weights ``W ~ N(0, 1/d_model)``, ``b = 0``.
    dtype : {"float32", "float64"}
    params : dict with ``"W"`` (D, C) and ``"b"`` (C,), optional
        Weights to use instead of random ones (e.g. from a checkpoint).

    Examples
    --------
    >>> head = Classifier(d_model=8, n_classes=3)
    >>> head(np.zeros((2, 5, 8), dtype=np.float32)).shape
    (2, 5, 3)
    """

    def __init__(
        self,
        d_model: int,
        n_classes: int,
        pooling: str = "token",
        seed: int = 0,
        dtype: str = "float32",
        params: dict[str, np.ndarray] | None = None,
    ):
        self.d_model = check_int("d_model", d_model, 1)
        self.n_classes = check_int("n_classes", n_classes, 1)
        self.pooling = check_option("pooling", pooling, POOLING_OPTIONS)
        if isinstance(dtype, np.dtype):
            dtype = dtype.name
        self.dtype = np.dtype(check_option("dtype", dtype, ("float32", "float64")))
        shapes = {"W": (self.d_model, self.n_classes), "b": (self.n_classes,)}
        if params is None:
            rng = np.random.default_rng(check_int("seed", seed, 0))
            params = {
                "W": rng.standard_normal(shapes["W"]) / np.sqrt(self.d_model),
                "b": np.zeros(shapes["b"]),
            }
        if not isinstance(params, Mapping) or sorted(params, key=str) != ["W", "b"]:
            got = sorted(params, key=str) if isinstance(params, Mapping) else type(params).__name__
            raise ValueError(f"params must be a dict with exactly the keys ['W', 'b'], got {got}")
        self.params = {}
        for name, shape in shapes.items():
            label = f"classifier parameter {name!r}"
            value = as_array(params[name], label)
            if not np.issubdtype(value.dtype, np.floating):
                raise TypeError(f"{label} must be floating point, got {value.dtype}")
            if value.shape != shape:
                raise ValueError(f"{label} has shape {value.shape}, expected {shape}")
            with np.errstate(over="ignore"):  # an overflow to inf is reported just below
                self.params[name] = np.array(value, dtype=self.dtype)  # a copy, never shared
            check_finite(label, self.params[name])

    def __repr__(self) -> str:
        return (
            f"Classifier(d_model={self.d_model}, n_classes={self.n_classes}, "
            f"pooling={self.pooling!r})"
        )

    def __call__(self, hidden: Any, mask: Any = None) -> np.ndarray:
        """Logits: (B, S, C) for ``pooling="token"``, else (B, C).

        Parameters
        ----------
        hidden : ndarray of shape (B, S, D)
        mask : bool or 0/1 array of shape (B, S), optional
            1 for real tokens (only ``"mean"`` pooling reads it).
        """
        h, m = self._check(hidden, mask)
        return linear(pool(h, m, self.pooling), self.params["W"], self.params["b"])

    def backward(
        self, grad_logits: np.ndarray, hidden: Any, mask: Any = None
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Gradients from ``dL/dlogits``.

        Parameters
        ----------
        grad_logits : ndarray of the logits' shape
        hidden, mask
            The inputs of the forward pass.

        Returns
        -------
        grads : dict with ``"W"`` (D, C) and ``"b"`` (C,)
        grad_hidden : ndarray of shape (B, S, D)
            ``dL/dhidden``, to pass on to :func:`~minitransformer.backprop.backward`.
        """
        h, m = self._check(hidden, mask)
        pooled = pool(h, m, self.pooling)
        grad_pooled, grad_W, grad_b = linear_backward(grad_logits, pooled, self.params["W"])
        grad_hidden = pool_backward(grad_pooled, m, self.pooling, h.shape[1])
        return {"W": grad_W, "b": grad_b}, grad_hidden

    def _check(self, hidden: Any, mask: Any) -> tuple[np.ndarray, np.ndarray | None]:
        h = as_array(hidden, "hidden")
        if h.ndim != 3 or h.shape[-1] != self.d_model or 0 in h.shape:
            raise ValueError(
                f"hidden must have shape (batch, seq, {self.d_model}) with batch, seq >= 1, "
                f"got {h.shape}"
            )
        if not np.issubdtype(h.dtype, np.floating):
            raise TypeError(f"hidden must be floating point, got {h.dtype}")
        check_finite("hidden", h)
        if mask is None:
            return h, None
        m = as_mask(mask, h.shape[:2])
        if self.pooling == "mean":
            _check_real_tokens(m)
        return h, m


# ----------------------------------------------------------------------------- the loss


def log_softmax(logits: np.ndarray) -> np.ndarray:  # (..., C) -> (..., C)
    """``log softmax(z) = z - max(z) - log(sum(exp(z - max(z))))`` over the last axis."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def cross_entropy(
    logits: np.ndarray, targets: Any, ignore_index: int = IGNORE_INDEX
) -> tuple[float, np.ndarray]:  # (..., C), (...) -> loss, dL/dlogits (..., C)
    """Mean cross-entropy of the targets that are not ``ignore_index``, and its gradient.

    ``L = -(1/N) sum_n log softmax(logits_n)[y_n]`` over the N scored targets. Its gradient
    is ``dL/dlogits_n = (softmax(logits_n) - onehot(y_n)) / N``, and 0 at ignored targets:
    the predicted probabilities minus the true ones. As ``torch.nn.functional.cross_entropy``.

    Parameters
    ----------
    logits : ndarray of shape (..., C)
    targets : int array of shape (...)
        Class ids in ``[0, C)``, or ``ignore_index`` where nothing is to be predicted
        (padding, positions without a target).
    ignore_index : int

    Returns
    -------
    loss : float
    grad_logits : ndarray of the shape of ``logits``

    Raises
    ------
    ValueError
        If shapes disagree, a target is out of range, every target is ignored, or the logits
        hold inf or NaN (:class:`~minitransformer.validation.NonFiniteError`).
    """
    z, y, scored = _check_targets(logits, targets, ignore_index)
    check_finite("logits", z)
    n = int(scored.sum())
    picked = np.where(scored, y, 0)[..., None]  # (..., 1); any valid class where ignored
    # log softmax(z)[y] = z[y] - max(z) - log(sum(exp(z - max(z)))), computed stably
    shifted = z - z.max(axis=-1, keepdims=True)  # (..., C)
    exp = np.exp(shifted)
    total = exp.sum(axis=-1, keepdims=True)  # (..., 1)
    log_p = np.take_along_axis(shifted, picked, axis=-1) - np.log(total)  # (..., 1)
    loss = -float(log_p[scored].sum()) / n
    grad = exp / total  # softmax(z), (..., C)
    p_target = np.take_along_axis(grad, picked, axis=-1)
    np.put_along_axis(grad, picked, p_target - 1, axis=-1)  # softmax - onehot(y)
    grad *= (scored / n).astype(grad.dtype)[..., None]  # / N where scored, 0 where ignored
    return loss, grad


def accuracy(logits: np.ndarray, targets: Any, ignore_index: int = IGNORE_INDEX) -> float:
    """Fraction of scored targets (not ``ignore_index``) whose class has the largest logit.

    Checked as in :func:`cross_entropy`: a target out of range would never match and count
    as a silent error, and with no scored target the fraction is undefined.
    """
    z, y, scored = _check_targets(logits, targets, ignore_index)
    return float((z.argmax(axis=-1) == y)[scored].mean())


def _check_targets(
    logits: Any, targets: Any, ignore_index: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits (..., C) and integer targets (...) in ``[0, C)`` or ``ignore_index``, at least
    one of them scored. Returns ``(logits, targets, scored)`` as arrays."""
    ignore_index = check_int("ignore_index", ignore_index)
    z = as_array(logits, "logits")
    if z.ndim == 0 or not np.issubdtype(z.dtype, np.floating):
        raise TypeError(f"logits must be a floating-point array (..., C), got {z.dtype} {z.shape}")
    y = as_array(targets, "targets", "targets", f"class ids in [0, {z.shape[-1]})")
    if y.dtype == bool or not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"targets must be integers, got dtype {y.dtype}")
    if y.shape != z.shape[:-1]:
        raise ValueError(
            f"targets must have shape {z.shape[:-1]} (logits without C), got {y.shape}"
        )
    C = z.shape[-1]
    scored = y != ignore_index
    bad = scored & ((y < 0) | (y >= C))
    if bad.any():
        raise ValueError(
            f"targets must be in [0, {C}) or {ignore_index}, got {np.unique(y[bad])[:10].tolist()}"
        )
    if not scored.any():
        raise ValueError(f"every target is ignore_index={ignore_index}: nothing to score")
    return z, y, scored
