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

from minitransformer.encoder import Encoder
from minitransformer.interpret.checks import check_count, check_index
from minitransformer.interpret.inputs import ModelInputs, model_inputs, one_sequence
from minitransformer.interpret.objectives import Objective


def occlusion(
    model: Encoder,
    token_ids: Any,
    objective: Objective,
    mask: Any = None,
    *,
    replace_with: int | None = None,
    token_type_ids: Any = None,
) -> np.ndarray:
    """``a_j = F(x) - F(x with token j occluded)`` for every real token j.

    Parameters
    ----------
    model : Encoder
    token_ids : int array of shape (S,) or (1, S), or a BatchEncoding of one sequence
        (a BatchEncoding brings its mask and token types; see
        :func:`~minitransformer.interpret.inputs.model_inputs`).
    objective : callable
        ``F``; called on a batch of S + 1 sequences (the input, then each occluded copy).
    mask : array of shape (S,) or (1, S), optional
    replace_with : int, optional
        Put this id in place of the token (e.g. ``[MASK]`` or the padding id); the token
        keeps its position and token type. None: hide the token from attention by masking its
        key instead.
    token_type_ids : int array of shape (S,) or (1, S), optional
        Segment ids (sentence pairs), used in every pass.

    Returns
    -------
    ndarray of shape (S,): 0 at padding positions.
    """
    x = one_sequence(model, token_ids, mask, token_type_ids)
    if replace_with is not None:
        replace_with = check_index(
            replace_with, model.config.vocab_size, "replace_with", " (a token id < vocab_size)"
        )
    S = x.shape[1]
    copies = x.repeat(S + 1)  # row 0: the input; row 1 + j: token j occluded
    for j in range(S):
        if replace_with is None:
            copies.mask[1 + j, j] = False
        else:
            copies.token_ids[1 + j, j] = replace_with
    values, _ = objective(copies.run(model))
    scores = values[0] - values[1:]
    return np.where(x.mask[0], scores, 0.0)


def gradient_x_input(
    model: Encoder,
    token_ids: Any,
    objective: Objective,
    mask: Any = None,
    *,
    token_type_ids: Any = None,
) -> np.ndarray:
    """``a_j = sum_d x_jd dF/dx_jd``, x the token embeddings (``embed.tokens``).

    Parameters
    ----------
    model, token_ids, objective, mask, token_type_ids
        As for :func:`occlusion`.

    Returns
    -------
    ndarray of shape (S,)
    """
    x = one_sequence(model, token_ids, mask, token_type_ids)
    hidden, trace = x.run_with_trace(model)
    _, grad_hidden = objective(hidden)
    grads = x.backward(model, trace, grad_hidden)
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
    *,
    token_type_ids: Any = None,
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
    token_ids : int array of shape (S,) or (1, S), or a BatchEncoding of one sequence
    objective : callable
        ``F``; called on a batch of m + 1 sequences.
    baseline_ids : int array of the same shape
        ``x'``, e.g. every token but [CLS]/[SEP] replaced by [PAD] (transformers-interpret's
        choice). Same length, so positions are shared; token types are shared too, so only
        the token rows of ``e`` and ``e'`` differ.
    mask : array of shape (S,) or (1, S), optional
        Used for the input, the baseline and every point between.
    steps : int
        m; Sundararajan et al. advise 20 to 300.
    token_type_ids : int array of shape (S,) or (1, S), optional
        Segment ids (sentence pairs), used for the input, the baseline and the path.

    Returns
    -------
    IGResult
    """
    steps = check_count(steps, "steps")
    x = one_sequence(model, token_ids, mask, token_type_ids)
    base_ids = model_inputs(model, baseline_ids, name="baseline_ids").token_ids
    if base_ids.shape != x.shape:
        raise ValueError(
            f"baseline_ids must have the input's shape {x.shape}, got {base_ids.shape}"
        )
    base = ModelInputs(base_ids, x.mask, x.token_type_ids)  # the input's mask and token types
    _, x_trace = x.run_with_trace(model, keep="embed.sum")
    _, b_trace = base.run_with_trace(model, keep="embed.sum")
    e, e_base = x_trace["embed.sum"], b_trace["embed.sum"]  # (1, S, D) each
    alphas = np.linspace(0.0, 1.0, steps + 1)[:, None, None]  # (m + 1, 1, 1)
    path = (e_base + alphas * (e - e_base)).astype(e.dtype)  # (m + 1, S, D)
    points = base.repeat(steps + 1)
    hidden, trace = points.run_with_trace(model, patch={"embed.sum": path})
    values, grad_hidden = objective(hidden)
    grads = points.backward(model, trace, grad_hidden).embeddings  # (m + 1, S, D)
    w = np.ones(steps + 1) / steps
    w[[0, -1]] /= 2  # trapezoid weights
    avg_grad = np.einsum("k,ksd->sd", w, grads.astype(np.float64))
    scores = ((e - e_base)[0] * avg_grad).sum(-1)
    output, baseline_output = float(values[-1]), float(values[0])  # alpha = 1 and alpha = 0
    delta = float(scores.sum() - (output - baseline_output))
    return IGResult(scores, output, baseline_output, delta)


def gradient_weighted_rollout(
    model: Encoder,
    token_ids: Any,
    objective: Objective,
    mask: Any = None,
    *,
    token_type_ids: Any = None,
) -> np.ndarray:
    """Chefer et al. (2021)'s gradient-weighted rollout: ``R <- R + mean_h (dF/dA * A)^+ R``.

    Parameters
    ----------
    model, token_ids, objective, mask, token_type_ids
        As for :func:`occlusion`.

    Returns
    -------
    ndarray of shape (S, S)
        ``R[i, j]``: relevance of input token j for token i's output (read the row of the
        position F reads, e.g. [CLS]). ``R - I`` is 0 where no head's gradient-weighted
        attention is positive.
    """
    x = one_sequence(model, token_ids, mask, token_type_ids)
    hidden, trace = x.run_with_trace(model)
    _, grad_hidden = objective(hidden)
    grads = x.backward(model, trace, grad_hidden)
    S = x.shape[1]
    R = np.eye(S)
    for l in range(model.config.n_layers):
        A = trace[f"blocks.{l}.attn.weights"][0]  # (H, S, S)
        A_bar = np.maximum(grads.attn_weights[l][0] * A, 0.0).mean(axis=0)  # (S, S)
        R = R + A_bar @ R
    return R
