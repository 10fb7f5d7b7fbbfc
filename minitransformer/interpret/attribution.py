"""Which input tokens drive an output? Four attributions of one sequence, one score per token.

``F`` is an objective (:mod:`~minitransformer.interpret.objectives`): a number computed from
the hidden states, e.g. the logit of the predicted class at one position. Each method gives
every token j a score ``a_j``:

* **occlusion** (leave one out; Zeiler & Fergus 2014, the "blank-out" of Abnar & Zuidema
  2020): ``a_j = F(x) - F(x without token j)``. "Without" is either another id in its place
  (``replace_with=``, e.g. ``[MASK]`` or padding: the input keeps its length and positions)
  or the token hidden from attention (``replace_with=None``: its key is masked, so no other
  token reads it; its own row and hidden state are still computed). One forward pass per
  token, all in one batch.
* **gradient x input** (Shrikumar et al. 2016): ``a_j = sum_d x_jd dF/dx_jd`` with ``x`` the
  token embeddings ``embed.tokens``. One backward pass; first-order only, so the scores do
  not add up to anything in particular.
* **Integrated Gradients** (Sundararajan et al. 2017), over the input embeddings as
  transformers-interpret does: along the straight path from a baseline input ``x'`` (e.g.
  every token replaced by padding) to ``x``,
  ``a_j = sum_d (x - x')_jd * integral_0^1 dF(x' + alpha (x - x'))/dx_jd dalpha``.
  The path runs over ``embed.sum``; baseline and input share their positions, so only the
  token rows differ. The integral is the trapezoid rule on ``steps`` intervals. **Completeness**:
  ``sum_j a_j = F(x) - F(x')`` exactly for the exact integral; :class:`IGResult` reports the gap.
* **gradient-weighted attention rollout** (Chefer, Gur & Wolf, ICCV 2021, the variant without
  LRP): weight each head's attention by its gradient, keep the positive part, average heads,
  and roll out with the identity: ``A_bar_l = mean_h (dF/dA_lh * A_lh)^+``,
  ``R = I``, ``R <- R + A_bar_l R`` for l = 1 .. L. Row i of R scores the input tokens for
  token i's output. Unlike plain rollout it depends on *which* output F is, and its rows do
  not sum to 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from minitransformer.backprop import backward
from minitransformer.encoder import Encoder
from minitransformer.interpret.objectives import Objective
from minitransformer.validation import as_mask, as_token_ids


def _one_sequence(model: Encoder, token_ids: Any, mask: Any) -> tuple[np.ndarray, np.ndarray]:
    """token_ids (S,) or (1, S) -> ids (1, S) and a bool mask (1, S) (all True for None)."""
    ids = as_token_ids(token_ids, model.config)
    if ids.shape[0] != 1:
        raise ValueError(f"token_ids must be one sequence, shape (S,) or (1, S), got {ids.shape}")
    real = np.ones(ids.shape, bool) if mask is None else as_mask(mask, ids.shape)
    return ids, real


def occlusion(
    model: Encoder,
    token_ids: Any,
    objective: Objective,
    mask: Any = None,
    *,
    replace_with: int | None = None,
) -> np.ndarray:
    """``a_j = F(x) - F(x with token j occluded)`` for every real token j.

    Parameters
    ----------
    model : Encoder
    token_ids : int array of shape (S,) or (1, S)
    objective : callable
        ``F``; called on a batch of S + 1 sequences (the input, then each occluded copy).
    mask : array of shape (S,) or (1, S), optional
    replace_with : int, optional
        Put this id in place of the token (e.g. ``[MASK]`` or the padding id). None: hide the
        token from attention by masking its key instead.

    Returns
    -------
    ndarray of shape (S,): 0 at padding positions.
    """
    ids, real = _one_sequence(model, token_ids, mask)
    S = ids.shape[1]
    batch_ids = np.repeat(ids, S + 1, axis=0)  # row 0: the input; row 1 + j: token j occluded
    batch_mask = np.repeat(real, S + 1, axis=0)
    for j in range(S):
        if replace_with is None:
            batch_mask[1 + j, j] = False
        else:
            batch_ids[1 + j, j] = replace_with
    values, _ = objective(model(batch_ids, batch_mask))
    scores = values[0] - values[1:]
    return np.where(real[0], scores, 0.0)


def gradient_x_input(
    model: Encoder, token_ids: Any, objective: Objective, mask: Any = None
) -> np.ndarray:
    """``a_j = sum_d x_jd dF/dx_jd``, x the token embeddings (``embed.tokens``).

    Returns
    -------
    ndarray of shape (S,)
    """
    ids, real = _one_sequence(model, token_ids, mask)
    hidden, trace = model.run_with_trace(ids, real)
    _, grad_hidden = objective(hidden)
    grads = backward(model, trace, grad_hidden, ids)
    return (trace["embed.tokens"][0] * grads.embeddings[0]).sum(-1)


@dataclass(frozen=True)
class IGResult:
    """Integrated Gradients of one sequence, with its completeness check.

    Attributes
    ----------
    scores : ndarray of shape (S,)
        ``a_j``, one per token.
    output, baseline_output : float
        ``F(x)`` and ``F(x')``.
    delta : float
        ``sum_j a_j - (F(x) - F(x'))``: 0 for the exact integral; shrinks as ``steps`` grows.
    """

    scores: np.ndarray
    output: float
    baseline_output: float
    delta: float

    @property
    def relative_delta(self) -> float:
        """``|delta| / |F(x) - F(x')|``: the completeness error as a fraction."""
        return abs(self.delta) / max(abs(self.output - self.baseline_output), 1e-300)


def integrated_gradients(
    model: Encoder,
    token_ids: Any,
    objective: Objective,
    baseline_ids: Any,
    mask: Any = None,
    steps: int = 50,
) -> IGResult:
    """Integrated Gradients over the input embeddings, trapezoid rule with ``steps`` intervals.

    With ``e = embed.sum`` of the input and ``e'`` of the baseline, and ``alpha_k = k / m``
    for k = 0..m (m = ``steps``)::

        avg_grad = sum_k w_k dF/de (e' + alpha_k (e - e')),   w = (1/2, 1, ..., 1, 1/2) / m
        a_j = sum_d (e - e')_jd avg_grad_jd

    The m + 1 points run as one batch; each is the baseline's forward pass with ``embed.sum``
    patched to the point on the path.

    Parameters
    ----------
    model : Encoder
    token_ids : int array of shape (S,) or (1, S)
    objective : callable
        ``F``; called on a batch of m + 1 sequences.
    baseline_ids : int array of the same shape
        ``x'``, e.g. every token but [CLS]/[SEP] replaced by [PAD] (transformers-interpret's
        choice). Same length, so positions are shared.
    mask : array of shape (S,) or (1, S), optional
        Used for the input, the baseline and every point between.
    steps : int
        m; Sundararajan et al. advise 20 to 300.

    Returns
    -------
    IGResult
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    ids, real = _one_sequence(model, token_ids, mask)
    base = as_token_ids(baseline_ids, model.config, name="baseline_ids")
    if base.shape != ids.shape:
        raise ValueError(f"baseline_ids must have the input's shape {ids.shape}, got {base.shape}")
    _, x_trace = model.run_with_trace(ids, real, keep="embed.sum")
    _, b_trace = model.run_with_trace(base, real, keep="embed.sum")
    e, e_base = x_trace["embed.sum"], b_trace["embed.sum"]  # (1, S, D) each
    alphas = np.linspace(0.0, 1.0, steps + 1)[:, None, None]  # (m + 1, 1, 1)
    path = (e_base + alphas * (e - e_base)).astype(e.dtype)  # (m + 1, S, D)
    path_ids = np.repeat(base, steps + 1, axis=0)
    path_mask = np.repeat(real, steps + 1, axis=0)
    hidden, trace = model.run_with_trace(path_ids, path_mask, patch={"embed.sum": path})
    values, grad_hidden = objective(hidden)
    grads = backward(model, trace, grad_hidden, path_ids).embeddings  # (m + 1, S, D)
    w = np.ones(steps + 1) / steps
    w[[0, -1]] /= 2  # trapezoid weights
    avg_grad = np.einsum("k,ksd->sd", w, grads.astype(np.float64))
    scores = ((e - e_base)[0] * avg_grad).sum(-1)
    output, baseline_output = float(values[-1]), float(values[0])  # alpha = 1 and alpha = 0
    delta = float(scores.sum() - (output - baseline_output))
    return IGResult(scores, output, baseline_output, delta)


def gradient_weighted_rollout(
    model: Encoder, token_ids: Any, objective: Objective, mask: Any = None
) -> np.ndarray:
    """Chefer et al. (2021)'s gradient-weighted rollout: ``R <- R + mean_h (dF/dA * A)^+ R``.

    Returns
    -------
    ndarray of shape (S, S)
        ``R[i, j]``: relevance of input token j for token i's output (read the row of the
        position F reads, e.g. [CLS]). ``R - I`` is 0 where no head's gradient-weighted
        attention is positive.
    """
    ids, real = _one_sequence(model, token_ids, mask)
    hidden, trace = model.run_with_trace(ids, real)
    _, grad_hidden = objective(hidden)
    grads = backward(model, trace, grad_hidden, ids)
    S = ids.shape[1]
    R = np.eye(S)
    for l in range(model.config.n_layers):
        A = trace[f"blocks.{l}.attn.weights"][0]  # (H, S, S)
        A_bar = np.maximum(grads.attn_weights[l][0] * A, 0.0).mean(axis=0)  # (S, S)
        R = R + A_bar @ R
    return R
