"""Backpropagation through the encoder, by hand, reading every intermediate from the trace.

The forward pass (:meth:`Encoder._forward`) records every intermediate in a
:class:`~minitransformer.trace.Trace`; the backward pass walks the same steps in reverse,
calling the ``*_backward`` function that sits next to each forward function in
:mod:`~minitransformer.functional`, :mod:`~minitransformer.attention` and
:mod:`~minitransformer.positional`. Nothing is recomputed from the parameters except the
output of a dropout, which is its recorded input times its recorded mask.

The chain rule at a residual connection ``out = x + f(x)`` is ``dL/dx = dL/dout +
(dL/df) df/dx``: the gradient flows both around and through the sublayer, and the two parts
add. Read :func:`backward` top to bottom next to :meth:`Encoder._block` to see the pairs.

>>> import numpy as np
>>> from minitransformer import Encoder, EncoderConfig
>>> model = Encoder(EncoderConfig(vocab_size=10, d_model=8, n_heads=2, dtype="float64"))
>>> hidden, trace = model.run_with_trace([1, 2, 3])
>>> grads = backward(model, trace, np.ones_like(hidden), [1, 2, 3])  # L = sum(hidden)
>>> grads.params["blocks.0.attn.W_Q"].shape, grads.embeddings.shape
((8, 8), (1, 3, 8))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from minitransformer.attention import (
    attention_scores_backward,
    merge_heads,
    merge_heads_backward,
    split_heads_backward,
)
from minitransformer.functional import (
    ACTIVATION_BACKWARDS,
    dropout_backward,
    embedding_backward,
    layer_norm_backward,
    linear_backward,
    masked_softmax_backward,
)
from minitransformer.positional import position_embedding_backward
from minitransformer.trace import Trace, expected_names
from minitransformer.validation import (
    as_array,
    as_head_mask,
    as_token_ids,
    as_token_type_ids,
    check_finite,
)

if TYPE_CHECKING:
    from minitransformer.encoder import Encoder


@dataclass(frozen=True)
class Gradients:
    """The gradient of a scalar loss with respect to the parameters and the input embeddings.

    Attributes
    ----------
    params : dict of name -> ndarray
        ``dL/dparam`` for every parameter, with exactly the names, shapes and order of
        ``model.params``.
    embeddings : ndarray of shape (B, S, D)
        ``dL/d embed.sum``, the gradient with respect to the summed input embeddings (before
        the embedding LayerNorm and dropout). Because ``embed.sum`` is a plain sum, this is
        also the gradient with respect to each of its terms: ``embed.tokens``,
        ``embed.positions`` (per sequence) and ``embed.token_types``. Gradient x input and
        Integrated Gradients start from it.
    head_mask : ndarray of shape (B, n_layers, n_heads)
        ``dL/dxi``, the gradient with respect to the head gates of Michel et al. (2019)
        (``head_mask`` of the forward pass, all 1 when none was given), *per sequence*: entry
        ``[b, l, h] = sum_{s, d} dL/dgated_z[b, h, s, d] * z[b, h, s, d]`` is the gradient of
        sequence b's gates, as if each sequence had its own copy of them. When L is a sum of
        per-sequence losses, it is ``dL_b/dxi``; ``.sum(axis=0)`` is the gradient with respect
        to the one shared ``head_mask``. Head importance (``E_x |dL/dxi_h|``) is read from it.
    attn_weights : list of ndarray of shape (B, H, S, S)
        ``attn_weights[l]`` = ``dL/d blocks.{l}.attn.weights`` (before dropout on the
        weights), as gradient-weighted attention rollout (Chefer et al. 2021) reads it.
    """

    params: dict[str, np.ndarray]
    embeddings: np.ndarray
    head_mask: np.ndarray
    attn_weights: list[np.ndarray]


def backward(
    model: Encoder,
    trace: Trace,
    grad_hidden: Any,
    token_ids: Any,
    token_type_ids: Any = None,
    head_mask: Any = None,
    constants: Iterable[str] = (),
) -> Gradients:
    """Backpropagate ``dL/dhidden`` through the encoder, reading the forward pass's trace.

    Parameters
    ----------
    model : Encoder
        The model that recorded ``trace``, with the same parameters as then.
    trace : Trace
        A full trace from ``model.run_with_trace`` (no ``keep=``). A training trace (with
        ``training=True`` and ``config.dropout > 0``) is recognised by its dropout masks, and
        the gradient then goes through the very masks the forward pass drew.
    grad_hidden : ndarray of shape (B, S, D)
        ``dL/dhidden``, the gradient of the loss with respect to the encoder's output.
    token_ids : int array of shape (S,) or (B, S)
        The token ids of the forward pass (the trace holds their embeddings, not the ids).
    token_type_ids : int array of the same shape, optional
        The token-type ids of the forward pass (default all 0).
    head_mask : array of shape (n_layers, n_heads), optional
        The head mask of the forward pass (None: none was given).
    constants : iterable of str, optional
        Attention weights ``"blocks.{l}.attn.weights"`` to treat as constants: the gradient
        stops there and does not reach the scores, ``q`` and ``k`` of that block (``W_Q``,
        ``b_Q``, ``W_K``, ``b_K`` get 0). Use it for weights replaced with ``patch=`` (e.g.
        frozen to uniform), which do not depend on the scores; without it the backward pass
        goes through the softmax as if the patched weights had come out of it.

    Returns
    -------
    Gradients

    Raises
    ------
    ValueError
        If the trace misses names (listing them), belongs to another config, or does not match
        ``token_ids``, ``token_type_ids`` or ``head_mask``, or ``grad_hidden`` has the wrong
        shape, or ``constants`` names anything but this model's attention weights.

    Notes
    -----
    Training is told from evaluation by the dropout masks alone: a training trace filtered to
    everything *but* its masks would be read as an evaluation trace. Record full traces.
    """
    cfg = model.config
    if trace.config != cfg:
        raise ValueError(f"trace was recorded by a model with {trace.config}, not {cfg}")
    training = any(name.endswith("dropout_mask") for name in trace)
    missing = [name for name in expected_names(cfg, training) if name not in trace]
    if missing:
        raise ValueError(
            f"backward needs a full trace, but {len(missing)} name(s) are missing "
            f"(was it recorded with keep=?): {missing}"
        )
    ids = as_token_ids(token_ids, cfg)
    if ids.shape != trace["embed.tokens"].shape[:2]:
        raise ValueError(
            f"token_ids has shape {ids.shape}, but the trace was recorded for shape "
            f"{trace['embed.tokens'].shape[:2]}"
        )
    if not np.array_equal(model.params["embed.W_E"][ids], trace["embed.tokens"]):
        raise ValueError(
            "token_ids do not match the trace's embed.tokens (other ids, or the parameters "
            "changed since the trace was recorded)"
        )
    types = as_token_type_ids(token_type_ids, ids.shape, cfg)
    if cfg.type_vocab_size > 0 and not np.array_equal(
        model.params["embed.W_type"][types], trace["embed.token_types"]
    ):
        raise ValueError("token_type_ids do not match the trace's embed.token_types")
    g = as_array(grad_hidden, "grad_hidden")
    if g.shape != (*ids.shape, cfg.d_model):
        raise ValueError(
            f"grad_hidden must have the hidden states' shape {(*ids.shape, cfg.d_model)}, "
            f"got {g.shape}"
        )
    check_finite("grad_hidden", g)
    gates = as_head_mask(head_mask, cfg)
    for l in range(cfg.n_layers):  # concat = merge_heads(xi * z) tells which mask was used
        z = trace[f"blocks.{l}.attn.z"]
        gated = z if gates is None else z * gates[l][:, None, None]
        if not np.array_equal(merge_heads(gated), trace[f"blocks.{l}.attn.concat"]):
            raise ValueError(
                f"blocks.{l}.attn.concat is not merge_heads(head_mask * attn.z): pass backward "
                f"the head_mask of the forward pass (and do not patch attn.concat)"
            )
    constant_weights = set(constants) if not isinstance(constants, str) else {constants}
    allowed = {f"blocks.{l}.attn.weights" for l in range(cfg.n_layers)}
    if not constant_weights <= allowed:
        raise ValueError(
            f"constants may only name attention weights {sorted(allowed)}, got "
            f"{sorted(constant_weights - allowed)}"
        )
    steps = _Backward(model, trace, training, gates, constant_weights)
    if cfg.norm == "pre":
        g = steps.layer_norm("final_ln", g)
    for l in reversed(range(cfg.n_layers)):
        x = trace["embed.out"] if l == 0 else trace[f"blocks.{l - 1}.out"]  # the block's input
        g = steps.block(l, g, x)

    g = steps.dropout("embed.dropout_mask", g)
    if cfg.embed_layer_norm:
        g = steps.layer_norm("embed.ln", g)
    # embed.sum = tokens + positions + token types: each term receives the same gradient g.
    grads = steps.grads
    grads["embed.W_E"] = embedding_backward(g, ids, cfg.vocab_size)
    if cfg.positional == "learned":
        grads["embed.W_pos"] = position_embedding_backward(g, cfg.max_len)
    if cfg.type_vocab_size > 0:
        grads["embed.W_type"] = embedding_backward(g, types, cfg.type_vocab_size)
    return Gradients(
        params={name: grads[name] for name in model.params},
        embeddings=g,
        head_mask=np.stack(steps.head_mask_grads[::-1], axis=1),  # (B, L, H), block 0 first
        attn_weights=steps.attn_weights_grads[::-1],
    )


def value_and_grad(
    model: Encoder,
    loss: Callable[[np.ndarray], tuple[float, np.ndarray]],
    token_ids: Any,
    mask: Any = None,
    *,
    token_type_ids: Any = None,
    training: bool = False,
    rng: np.random.Generator | None = None,
    head_mask: Any = None,
) -> tuple[float, Gradients]:
    """Forward pass, loss, and backward pass in one call.

    Parameters
    ----------
    model : Encoder
    loss : callable
        ``loss(hidden) -> (value, dL/dhidden)``: the loss of the hidden states (B, S, D)
        and its gradient with respect to them, e.g. ``lambda h: ((h * R).sum(), R)``.
    token_ids, mask, token_type_ids, training, rng, head_mask
        As in :meth:`Encoder.run_with_trace`.

    Returns
    -------
    value : float
    gradients : Gradients
    """
    hidden, trace = model.run_with_trace(
        token_ids,
        mask,
        token_type_ids=token_type_ids,
        training=training,
        rng=rng,
        head_mask=head_mask,
    )
    value, grad_hidden = loss(hidden)
    return value, backward(model, trace, grad_hidden, token_ids, token_type_ids, head_mask)


class _Backward:
    """The backward of each step of :class:`Encoder`, in the same order as its methods.

    Each method takes ``g``, the gradient with respect to the step's output, stores the
    gradients of the step's parameters in :attr:`grads`, and returns the gradient with
    respect to the step's input.
    """

    def __init__(
        self,
        model: Encoder,
        trace: Trace,
        training: bool,
        gates: np.ndarray | None,
        constant_weights: set[str],
    ):
        self.config = model.config
        self.params = model.params
        self.trace = trace
        self.p_drop = model.config.dropout if training else 0.0
        self.gates = gates  # the (L, H) head mask of the forward pass, or None
        self.constant_weights = constant_weights  # attn.weights names the gradient stops at
        self.grads: dict[str, np.ndarray] = {}
        self.head_mask_grads: list[np.ndarray] = []  # (B, H) per block, last block first
        self.attn_weights_grads: list[np.ndarray] = []  # (B, H, S, S) per block, last first

    def block(self, l: int, g: np.ndarray, x: np.ndarray) -> np.ndarray:
        """dL/dblocks.{l}.out (B, S, D) -> dL/d(block input) (B, S, D); ``x`` is the input."""
        b, t = f"blocks.{l}", self.trace
        if self.config.norm == "post":
            # out = LN2(resid_post), resid_post = h + FFN(h),
            # h = LN1(resid_mid), resid_mid = x + MHA(x)
            g_resid_post = self.layer_norm(f"{b}.ln2", g)
            g_ffn = self.dropout(f"{b}.ffn.out_dropout_mask", g_resid_post)
            g_h = g_resid_post + self.feed_forward(b, g_ffn, t[f"{b}.ln1.out"])
            g_resid_mid = self.layer_norm(f"{b}.ln1", g_h)
            g_attn = self.dropout(f"{b}.attn.out_dropout_mask", g_resid_mid)
            return g_resid_mid + self.attention(l, g_attn, x)
        # out = resid_mid + FFN(LN2(resid_mid)), resid_mid = x + MHA(LN1(x))
        g_ffn = self.dropout(f"{b}.ffn.out_dropout_mask", g)
        g_ln2_out = self.feed_forward(b, g_ffn, t[f"{b}.ln2.out"])
        g_resid_mid = g + self.layer_norm(f"{b}.ln2", g_ln2_out)
        g_attn = self.dropout(f"{b}.attn.out_dropout_mask", g_resid_mid)
        g_ln1_out = self.attention(l, g_attn, t[f"{b}.ln1.out"])
        return g_resid_mid + self.layer_norm(f"{b}.ln1", g_ln1_out)

    def attention(self, l: int, g: np.ndarray, x: np.ndarray) -> np.ndarray:
        """dL/dblocks.{l}.attn.out (B, S, D) -> dL/dx (B, S, D), ``x`` the attention's input.

        Without dropout on the weights, the lines from ``g_z`` to ``g_q, g_k`` are
        :func:`~minitransformer.attention.scaled_dot_product_attention_backward`.
        """
        b, t = f"blocks.{l}", self.trace
        g_concat = self.linear(f"{b}.attn.W_O", f"{b}.attn.b_O", g, t[f"{b}.attn.concat"])
        g_gated = merge_heads_backward(g_concat, self.config.n_heads)  # (B, H, S, Dh)
        # concat = merge_heads(xi_h z_h), so dL/dxi_h = sum(dL/dgated_h * z_h) over (s, d)
        # and dL/dz_h = xi_h dL/dgated_h (Michel et al. 2019's head gates)
        z = t[f"{b}.attn.z"]
        self.head_mask_grads.append(np.einsum("bhsd,bhsd->bh", g_gated, z))  # (B, H)
        g_z = g_gated if self.gates is None else g_gated * self.gates[l][:, None, None]
        weights, v = t[f"{b}.attn.weights"], t[f"{b}.attn.v"]
        used = self.redo_dropout(f"{b}.attn.weights_dropout_mask", weights)  # z = used @ v
        g_used = g_z @ v.swapaxes(-1, -2)  # (B, H, S, Dh) @ (B, H, Dh, S) -> (B, H, S, S)
        g_v = used.swapaxes(-1, -2) @ g_z  # (B, H, S, S) @ (B, H, S, Dh) -> (B, H, S, Dh)
        g_weights = self.dropout(f"{b}.attn.weights_dropout_mask", g_used)
        self.attn_weights_grads.append(g_weights)
        if f"{b}.attn.weights" in self.constant_weights:  # weights not computed from scores
            g_scores = np.zeros_like(g_weights)
        else:
            g_scores = masked_softmax_backward(g_weights, weights)  # 0 where masked
        q, k, scale = t[f"{b}.attn.q"], t[f"{b}.attn.k"], self.config.scale_scores
        g_q, g_k = attention_scores_backward(g_scores, q, k, scale)
        g_x = np.zeros_like(x)
        for name, g_head in (("Q", g_q), ("K", g_k), ("V", g_v)):  # x feeds all three
            g_proj = split_heads_backward(g_head)  # (B, S, D)
            g_x += self.linear(f"{b}.attn.W_{name}", f"{b}.attn.b_{name}", g_proj, x)
        return g_x

    def feed_forward(self, b: str, g: np.ndarray, h: np.ndarray) -> np.ndarray:
        """dL/dffn.out (B, S, D) -> dL/dh (B, S, D), ``h`` the feed-forward layer's input."""
        t = self.trace
        act = self.redo_dropout(f"{b}.ffn.act_dropout_mask", t[f"{b}.ffn.act"])  # (B, S, F)
        g_act = self.linear(f"{b}.ffn.W_2", f"{b}.ffn.b_2", g, act)  # (B, S, F)
        g_act = self.dropout(f"{b}.ffn.act_dropout_mask", g_act)
        g_pre = ACTIVATION_BACKWARDS[self.config.activation](g_act, t[f"{b}.ffn.pre"])
        return self.linear(f"{b}.ffn.W_1", f"{b}.ffn.b_1", g_pre, h)  # (B, S, D)

    def linear(self, W_name: str, b_name: str, g: np.ndarray, x: np.ndarray) -> np.ndarray:
        """dL/d(x @ W + b) -> dL/dx, storing dL/dW and dL/db."""
        g_x, self.grads[W_name], self.grads[b_name] = linear_backward(g, x, self.params[W_name])
        return g_x

    def layer_norm(self, prefix: str, g: np.ndarray) -> np.ndarray:
        """dL/d{prefix}.out -> dL/d(its input), storing dL/dgamma and dL/dbeta."""
        g_x, self.grads[f"{prefix}.gamma"], self.grads[f"{prefix}.beta"] = layer_norm_backward(
            g,
            self.trace[f"{prefix}.normed"],
            self.trace[f"{prefix}.std"],
            self.params[f"{prefix}.gamma"],
        )
        return g_x

    def dropout(self, name: str, g: np.ndarray) -> np.ndarray:
        """Through the dropout whose mask is recorded as ``name``; identity when not training."""
        if self.p_drop == 0.0:
            return g
        return dropout_backward(g, self.trace[name], self.p_drop)

    def redo_dropout(self, name: str, x: np.ndarray) -> np.ndarray:
        """The output of the dropout recorded as ``name``, from its recorded input ``x``."""
        if self.p_drop == 0.0:
            return x
        return x * self.trace[name] / (1.0 - self.p_drop)
