"""What an explanation explains: a number per sequence computed from the hidden states.

Importance and attribution methods ask "how does *this number* depend on the heads / the
input tokens?". An **objective** is that number together with its gradient::

    objective(hidden) -> (values, grad)

    hidden : ndarray of shape (B, S, D)   the encoder's output
    values : ndarray of shape (B,)        one number per sequence
    grad   : ndarray of shape (B, S, D)   d sum_b values[b] / d hidden

Sequences do not interact, so ``grad[b]`` is the gradient of ``values[b]`` alone. The
constructors below build objectives from a :class:`~minitransformer.heads.Classifier` or a
sentence-embedding reference; anything with this signature works.

Arguments given per sequence (classes, positions, targets) broadcast over the batch, so an
objective made for one sequence (shape (1, ...)) also serves a batch of its perturbed copies,
as occlusion and Integrated Gradients evaluate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from minitransformer.heads import IGNORE_INDEX, Classifier
from minitransformer.interpret.checks import check_indices
from minitransformer.pooling import sentence_embedding

Objective = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def _check_classifier(classifier: Any) -> Classifier:
    if not isinstance(classifier, Classifier):
        raise TypeError(f"classifier must be a Classifier, got {type(classifier).__name__}")
    return classifier


def _per_sequence(value: Any, B: int, name: str) -> np.ndarray:
    """``value`` (a scalar, or an array with 1 or B rows) broadcast to B rows."""
    a = np.asarray(value)
    if a.ndim == 0:
        return np.full(B, a)
    if a.shape[0] not in (1, B):
        raise ValueError(f"{name} must have 1 or {B} rows (one per sequence), got {a.shape}")
    return np.broadcast_to(a, (B, *a.shape[1:]))


def class_logit(
    classifier: Classifier, classes: Any, position: Any = None, mask: Any = None
) -> Objective:
    """The logit of a class: ``values[b] = logits[b, position[b], classes[b]]``.

    Parameters
    ----------
    classifier : Classifier
    classes : int or int array of shape (B,) or (1,)
        Each in ``[0, n_classes)``: a negative class is refused, never read from the end.
    position : int or int array of shape (B,), optional
        The position whose prediction is explained, in ``[0, S)``; required for
        ``pooling="token"``, ignored otherwise.
    mask : array of shape (B, S) or (1, S), optional
        Passed to the classifier (``"mean"`` pooling reads it).

    Raises
    ------
    TypeError, ValueError
        When ``classes`` or ``position`` are not integers (bools and floats included) or are
        out of range (``position`` is checked against S when the objective is called).
    """
    head = _check_classifier(classifier)
    if head.pooling == "token" and position is None:
        raise ValueError("position is required for a per-token classifier (pooling='token')")
    check_indices(
        classes, head.n_classes, "classes", f" (the classifier's {head.n_classes} classes)"
    )

    def objective(hidden: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        B = hidden.shape[0]
        m = None if mask is None else _per_sequence(mask, B, "mask")
        logits = head(hidden, m)  # (B, S, C) or (B, C)
        rows, c = np.arange(B), _per_sequence(classes, B, "classes")
        grad_logits = np.zeros_like(logits)
        if head.pooling == "token":
            S = hidden.shape[1]
            s = check_indices(
                _per_sequence(position, B, "position"), S, "position", f" (the {S} positions)"
            )
            values = logits[rows, s, c]
            grad_logits[rows, s, c] = 1.0
        else:
            values = logits[rows, c]
            grad_logits[rows, c] = 1.0
        _, grad_hidden = head.backward(grad_logits, hidden, m)
        return values, grad_hidden

    return objective


def classification_loss(classifier: Classifier, targets: Any, mask: Any = None) -> Objective:
    """Each sequence's mean cross-entropy over its scored targets (Michel et al.'s L(x)).

    ``values[b] = -(1 / N_b) sum_s log softmax(logits[b, s])[y_bs]`` over the N_b targets of
    sequence b that are not ``IGNORE_INDEX`` (0 when it has none); gradient
    ``(softmax - onehot) / N_b`` per scored target.

    Parameters
    ----------
    classifier : Classifier
    targets : int array of shape (B, S) for ``pooling="token"``, else (B,); or one row
    mask : array of shape (B, S), optional
        Passed to the classifier.
    """
    head = _check_classifier(classifier)

    def objective(hidden: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        B = hidden.shape[0]
        m = None if mask is None else _per_sequence(mask, B, "mask")
        logits = head(hidden, m)  # (B, [S,] C)
        y = _per_sequence(targets, B, "targets")
        if y.shape != logits.shape[:-1]:
            raise ValueError(f"targets must have shape {logits.shape[:-1]}, got {y.shape}")
        scored = y != IGNORE_INDEX
        check_indices(
            y[scored],
            logits.shape[-1],
            "targets",
            f" (the classifier's classes, or {IGNORE_INDEX} to skip)",
        )
        safe_y = np.where(scored, y, 0)
        shifted = logits - logits.max(axis=-1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))  # log softmax
        picked = np.take_along_axis(log_p, safe_y[..., None], axis=-1)[..., 0]
        n = np.maximum(scored.reshape(B, -1).sum(1), 1)  # (B,) targets per sequence
        values = -(picked * scored).reshape(B, -1).sum(1) / n
        one_hot = np.zeros_like(log_p)
        np.put_along_axis(one_hot, safe_y[..., None], 1.0, axis=-1)
        weight = (scored / n.reshape(B, *[1] * (scored.ndim - 1)))[..., None]
        grad_logits = ((np.exp(log_p) - one_hot) * weight).astype(logits.dtype)
        _, grad_hidden = head.backward(grad_logits, hidden, m)
        return values, grad_hidden

    return objective


def embedding_cosine(reference: Any, mask: Any) -> Objective:
    """Cosine between each sequence's sentence embedding and a reference vector.

    ``values[b] = e_b . r_b``, with ``e_b`` the L2-normalised mean of the real tokens' hidden
    vectors (:func:`~minitransformer.pooling.sentence_embedding`, as all-MiniLM-L6-v2) and
    ``r_b = reference[b] / ||reference[b]||``. With ``p_b`` the mean before normalising,
    ``d values[b] / d p_b = (r_b - values[b] e_b) / ||p_b||``, shared by the real tokens
    (``/ n_b`` each).

    Parameters
    ----------
    reference : ndarray of shape (B, D), (1, D) or (D,)
        Finite, and no row all zeros (a cosine with the zero vector is undefined).
    mask : array of shape (B, S) or (1, S)
        1 for real tokens; every sequence needs one (the mean of no vector is undefined).

    Raises
    ------
    ValueError
        For a zero or non-finite reference row or a sequence without a real token (at once),
        and when a sequence's pooled vector is zero (when the objective is called): each
        would make the cosine 0 / 0.
    """
    ref = np.atleast_2d(np.asarray(reference, dtype=np.float64))
    if ref.ndim != 2 or not np.isfinite(ref).all():
        raise ValueError(
            f"reference must be a finite array of shape (B, D) or (D,), got shape "
            f"{np.shape(reference)} with finite={bool(np.isfinite(ref).all())}"
        )
    zero = np.flatnonzero(np.linalg.norm(ref, axis=1) == 0)
    if zero.size:
        raise ValueError(
            f"reference row {zero[0]} is all zeros: the cosine with a zero vector is undefined"
        )
    real_tokens = np.atleast_2d(np.asarray(mask))
    empty = np.flatnonzero(~real_tokens.astype(bool).any(axis=1))
    if empty.size:
        raise ValueError(
            f"mask row {empty[0]} has no real token: its sentence embedding is undefined"
        )

    def objective(hidden: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        B = hidden.shape[0]
        real = _per_sequence(real_tokens, B, "mask").astype(bool)  # (B, S)
        m = real.astype(hidden.dtype)
        r = _per_sequence(ref, B, "reference")
        r = r / np.linalg.norm(r, axis=1, keepdims=True)
        e = sentence_embedding(hidden, real)  # (B, D), unit length
        values = (e * r).sum(1)
        n = m.sum(1, keepdims=True)  # (B, 1)
        pooled_norm = np.linalg.norm((m[..., None] * hidden).sum(1) / n, axis=1, keepdims=True)
        if (pooled_norm == 0).any():
            raise ValueError(
                f"sequence {int(np.flatnonzero(pooled_norm == 0)[0])}'s mean hidden vector is "
                f"zero: its cosine with the reference is undefined"
            )
        grad_pooled = (r - values[:, None] * e) / pooled_norm  # (B, D)
        grad = (m / n)[..., None] * grad_pooled[:, None, :]  # (B, S, D)
        return values, grad.astype(hidden.dtype)

    return objective
