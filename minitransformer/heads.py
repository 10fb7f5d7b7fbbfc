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

from typing import Any

import numpy as np

from minitransformer.functional import linear, linear_backward

POOLING_OPTIONS = ("token", "first", "mean")
IGNORE_INDEX = -100  # targets equal to this are skipped by the loss (PyTorch's default)


# ------------------------------------------------------------------------------ pooling


def pool(hidden: np.ndarray, mask: np.ndarray | None, pooling: str) -> np.ndarray:
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
    if pooling == "token":
        return hidden
    if pooling == "first":
        return hidden[:, 0]  # (B, D)
    if mask is None:
        return hidden.mean(axis=1)  # (B, D)
    weights = mask / mask.sum(axis=1, keepdims=True)  # (B, S): 1/n_real on real tokens, else 0
    return np.einsum("bs,bsd->bd", weights.astype(hidden.dtype), hidden)  # (B, D)


def pool_backward(
    grad_pooled: np.ndarray, mask: np.ndarray | None, pooling: str, seq_len: int
) -> np.ndarray:
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
    if pooling == "token":
        return grad_pooled
    B, D = grad_pooled.shape
    if pooling == "first":
        grad = np.zeros((B, seq_len, D), dtype=grad_pooled.dtype)
        grad[:, 0] = grad_pooled
        return grad
    if mask is None:
        mask = np.ones((B, seq_len), dtype=bool)
    weights = (mask / mask.sum(axis=1, keepdims=True)).astype(grad_pooled.dtype)  # (B, S)
    return weights[:, :, None] * grad_pooled[:, None, :]  # (B, S, D)


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
        for name, value in (("d_model", d_model), ("n_classes", n_classes)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if pooling not in POOLING_OPTIONS:
            raise ValueError(f"pooling must be one of {list(POOLING_OPTIONS)}, got {pooling!r}")
        self.d_model, self.n_classes, self.pooling = int(d_model), int(n_classes), pooling
        self.dtype = np.dtype(dtype)
        shapes = {"W": (self.d_model, self.n_classes), "b": (self.n_classes,)}
        if params is None:
            rng = np.random.default_rng(seed)
            params = {
                "W": rng.standard_normal(shapes["W"]) / np.sqrt(d_model),
                "b": np.zeros(shapes["b"]),
            }
        if sorted(params) != ["W", "b"]:
            raise ValueError(f"params must have exactly the keys ['W', 'b'], got {sorted(params)}")
        for name, shape in shapes.items():
            if np.shape(params[name]) != shape:
                raise ValueError(
                    f"classifier parameter {name!r} has shape {np.shape(params[name])}, "
                    f"expected {shape}"
                )
        self.params = {name: np.asarray(params[name], dtype=self.dtype) for name in shapes}

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
            ``dL/dhidden``, to pass on to :meth:`Encoder.backward`.
        """
        h, m = self._check(hidden, mask)
        pooled = pool(h, m, self.pooling)
        grad_pooled, grad_W, grad_b = linear_backward(grad_logits, pooled, self.params["W"])
        grad_hidden = pool_backward(grad_pooled, m, self.pooling, h.shape[1])
        return {"W": grad_W, "b": grad_b}, grad_hidden

    def _check(self, hidden: Any, mask: Any) -> tuple[np.ndarray, np.ndarray | None]:
        h = np.asarray(hidden)
        if h.ndim != 3 or h.shape[-1] != self.d_model:
            raise ValueError(f"hidden must have shape (batch, seq, {self.d_model}), got {h.shape}")
        if mask is None:
            return h, None
        m = np.asarray(mask)
        if m.shape != h.shape[:2]:
            raise ValueError(f"mask must have shape {h.shape[:2]}, got {m.shape}")
        m = m.astype(bool)
        if self.pooling == "mean" and not m.any(axis=1).all():
            raise ValueError("mask has a sequence with no real token; mean pooling needs one")
        return h, m


# ----------------------------------------------------------------------------- the loss


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """``log softmax(z) = z - max(z) - log(sum(exp(z - max(z))))`` over the last axis."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def cross_entropy(
    logits: np.ndarray, targets: Any, ignore_index: int = IGNORE_INDEX
) -> tuple[float, np.ndarray]:
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
        If shapes disagree, a target is out of range, or every target is ignored.
    """
    z = np.asarray(logits)
    y = np.asarray(targets)
    if not np.issubdtype(y.dtype, np.integer):
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
            f"targets must be in [0, {C}) or {ignore_index}, got {np.unique(y[bad])[:10]}"
        )
    n = int(scored.sum())
    if n == 0:
        raise ValueError(f"every target is ignore_index={ignore_index}: nothing to score")
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
    """Fraction of scored targets (not ``ignore_index``) whose class has the largest logit."""
    y = np.asarray(targets)
    scored = y != ignore_index
    return float((np.asarray(logits).argmax(axis=-1) == y)[scored].mean())
