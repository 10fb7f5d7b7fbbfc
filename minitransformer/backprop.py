"""Backpropagation through the encoder, by hand, reading every intermediate from the trace.

The forward pass (:class:`~minitransformer.encoder.ForwardPass`) records every intermediate in a
:class:`~minitransformer.trace.Trace`, and the trace keeps the pass's inputs (token ids, token
types, head mask). :class:`BackwardPass` walks the same steps in reverse, one method of the same
name per step, each calling the ``*_backward`` function that sits next to the forward function
it undoes, in :mod:`~minitransformer.functional`, :mod:`~minitransformer.attention` and
:mod:`~minitransformer.positional`. Nothing is recomputed from the parameters except the output
of a dropout, which is its recorded input times its recorded mask.

The chain rule at a residual connection ``out = x + f(x)`` is ``dL/dx = dL/dout +
(dL/df) df/dx``: the gradient flows both around and through the sublayer, and the two parts
add. Read :meth:`BackwardPass.add_and_norm` next to :meth:`ForwardPass.add_and_norm
<minitransformer.encoder.ForwardPass.add_and_norm>` to see the pair.

>>> import numpy as np
>>> from minitransformer import Encoder, EncoderConfig
>>> model = Encoder(EncoderConfig(vocab_size=10, d_model=8, n_heads=2, dtype="float64"))
>>> hidden, trace = model.run_with_trace([1, 2, 3])
>>> grads = backward(model, trace, np.ones_like(hidden))  # L = sum(hidden)
>>> grads.params["blocks.0.attn.W_Q"].shape, grads.embeddings.shape
((8, 8), (1, 3, 8))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from minitransformer.attention import (
    merge_heads,
    merge_heads_backward,
    scaled_dot_product_attention_backward,
    split_heads_backward,
)
from minitransformer.config import EncoderConfig
from minitransformer.functional import (
    ACTIVATION_BACKWARDS,
    dropout_backward,
    embedding_backward,
    layer_norm_backward,
    linear_backward,
)
from minitransformer.positional import position_embedding_backward
from minitransformer.trace import Trace, expected_names
from minitransformer.validation import as_array, check_finite


class Model(Protocol):
    """What the backward pass reads of a model: its config and its parameters. An
    :class:`~minitransformer.encoder.Encoder` is one; typing it by what is read keeps the
    backward pass from importing the forward pass."""

    config: EncoderConfig
    params: dict[str, np.ndarray]


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
        ``dL/dhead_mask``, the gradient with respect to the head mask of the forward pass
        (Michel et al. 2019's gates; all 1 when none was given), *per sequence*: entry
        ``[b, l, h] = sum_{s, d} dL/dgated_z[b, h, s, d] * z[b, h, s, d]`` is the gradient of
        sequence b's head mask, as if each sequence had its own copy of it. When L is a sum of
        per-sequence losses, it is ``dL_b/dhead_mask``; ``.sum(axis=0)`` is the gradient with
        respect to the one shared ``head_mask``. Head importance (``E_x |dL/dhead_mask|``) is
        read from it.
    attn_weights : list of ndarray of shape (B, H, S, S)
        ``attn_weights[l]`` = ``dL/d blocks.{l}.attn.weights`` (before dropout on the
        weights), as gradient-weighted attention rollout (Chefer et al. 2021) reads it.
    """

    params: dict[str, np.ndarray]
    embeddings: np.ndarray
    head_mask: np.ndarray
    attn_weights: list[np.ndarray]


def backward(
    model: Model, trace: Trace, grad_hidden: Any, constants: Iterable[str] = ()
) -> Gradients:
    """Backpropagate ``dL/dhidden`` through the encoder, reading the forward pass's trace.

    Parameters
    ----------
    model : Encoder
        The model that recorded ``trace``, with the same parameters as then.
    trace : Trace
        A full trace from ``model.run_with_trace`` (no ``keep=``); it holds the token ids,
        token types and head mask of the pass. A training trace (with ``training=True`` and
        ``config.dropout > 0``) is recognised by its dropout masks, and the gradient then goes
        through the very masks the forward pass drew.
    grad_hidden : ndarray of shape (B, S, D)
        ``dL/dhidden``, the gradient of the loss with respect to the encoder's output.
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
        See :func:`check_backward`.
    """
    grad_hidden, constant_weights = check_backward(model, trace, grad_hidden, constants)
    return BackwardPass(model, trace, constant_weights).run(grad_hidden)


def check_backward(
    model: Model, trace: Trace, grad_hidden: Any, constants: Iterable[str] = ()
) -> tuple[np.ndarray, frozenset[str]]:
    """The checks of :func:`backward`; returns ``grad_hidden`` as an array and ``constants``
    as a set.

    Raises
    ------
    TypeError
        If ``trace`` is not a :class:`~minitransformer.trace.Trace`.
    ValueError
        If the trace misses names (listing them), belongs to another config, does not know its
        token ids, or does not match the model's parameters (they changed since it was
        recorded) or its own head mask (``attn.concat`` patched); if ``grad_hidden`` has the
        wrong shape or holds inf or NaN; if ``constants`` names anything but this model's
        attention weights.

    Notes
    -----
    Training is told from evaluation by the dropout masks alone: a training trace filtered to
    everything *but* its masks would be read as an evaluation trace. Record full traces.
    """
    cfg = model.config
    if not isinstance(trace, Trace):
        raise TypeError(f"trace must be a Trace from model.run_with_trace, got {type(trace)}")
    if trace.config != cfg:
        raise ValueError(f"trace was recorded by a model with {trace.config}, not {cfg}")
    missing = [name for name in expected_names(cfg, is_training(trace)) if name not in trace]
    if missing:
        raise ValueError(
            f"backward needs a full trace, but {len(missing)} name(s) are missing "
            f"(was it recorded with keep=?): {missing}"
        )
    if trace.token_ids is None:
        raise ValueError("the trace does not know its token ids (make it with run_with_trace)")
    if not np.array_equal(model.params["embed.W_E"][trace.token_ids], trace["embed.tokens"]):
        raise ValueError(
            "the trace's embed.tokens are not the model's embeddings of its token ids (the "
            "parameters changed since the trace was recorded, or embed.tokens was patched)"
        )
    if cfg.type_vocab_size > 0 and not np.array_equal(
        model.params["embed.W_type"][token_types(trace)], trace["embed.token_types"]
    ):
        raise ValueError("the trace's embed.token_types are not those of its token_type_ids")
    for l in range(cfg.n_layers):  # concat = merge_heads(head_mask * z)
        z = trace[f"blocks.{l}.attn.z"]
        gated = z if trace.head_mask is None else z * trace.head_mask[l][:, None, None]
        if not np.array_equal(merge_heads(gated), trace[f"blocks.{l}.attn.concat"]):
            raise ValueError(
                f"blocks.{l}.attn.concat is not merge_heads(head_mask * attn.z): do not patch "
                f"attn.concat"
            )
    g = as_array(grad_hidden, "grad_hidden")
    expected = trace["embed.tokens"].shape  # (B, S, D)
    if g.shape != expected:
        raise ValueError(
            f"grad_hidden must have the hidden states' shape {expected}, got {g.shape}"
        )
    check_finite("grad_hidden", g)
    constant_weights = frozenset([constants] if isinstance(constants, str) else constants)
    allowed = {f"blocks.{l}.attn.weights" for l in range(cfg.n_layers)}
    if not constant_weights <= allowed:
        raise ValueError(
            f"constants may only name attention weights {sorted(allowed)}, got "
            f"{sorted(constant_weights - allowed)}"
        )
    return g, constant_weights


def is_training(trace: Trace) -> bool:
    """Whether the trace is of a training pass with dropout: it holds dropout masks."""
    return any(name.endswith("dropout_mask") for name in trace)


def token_types(trace: Trace) -> np.ndarray:
    """The trace's token-type ids (B, S), all 0 when it does not know them."""
    if trace.token_type_ids is not None:
        return trace.token_type_ids
    return np.zeros(trace["embed.tokens"].shape[:2], dtype=np.int64)


class BackwardPass:
    """The backward of one forward pass: a method per step of
    :class:`~minitransformer.encoder.ForwardPass`, of the same name, run in reverse order.

    Each method takes ``g``, the gradient with respect to the step's output (and, where the
    backward needs it, the step's input read from the trace), stores the gradients of the
    step's parameters in :attr:`grads`, and returns the gradient with respect to the step's
    input.

    Parameters
    ----------
    model : Encoder
    trace : Trace
        The full trace of the forward pass (checked by :func:`check_backward`).
    constant_weights : set of str
        Attention weights the gradient stops at (see :func:`backward`).
    """

    def __init__(self, model: Model, trace: Trace, constant_weights: Iterable[str] = ()):
        self.config, self.params = model.config, model.params
        self.trace = trace
        self.p_drop = model.config.dropout if is_training(trace) else 0.0
        self.head_mask = trace.head_mask  # (L, H) of the forward pass, or None
        self.constant_weights = frozenset(constant_weights)
        self.grads: dict[str, np.ndarray] = {}
        B, S, _ = trace["embed.tokens"].shape
        L, H = self.config.n_layers, self.config.n_heads
        self.head_mask_grad = np.zeros((B, L, H), dtype=self.config.np_dtype)
        self.attn_weights_grads: dict[str, np.ndarray] = {}  # dL/dattn.weights by name

    def run(self, grad_hidden: np.ndarray) -> Gradients:
        """The whole backward pass: ``dL/dhidden`` (B, S, D) -> every gradient."""
        g = grad_hidden
        if self.config.norm == "pre":
            g = self.layer_norm("final_ln", g)
        for l in reversed(range(self.config.n_layers)):
            g = self.block(l, g)  # (B, S, D)
        g = self.embed(g)
        weights = [f"blocks.{l}.attn.weights" for l in range(self.config.n_layers)]
        return Gradients(
            params={name: self.grads[name] for name in self.params},
            embeddings=g,
            head_mask=self.head_mask_grad,
            attn_weights=[self.attn_weights_grads[name] for name in weights],
        )

    def embed(self, g: np.ndarray) -> np.ndarray:
        """dL/dembed.out (B, S, D) -> dL/dembed.sum (B, S, D), storing the embedding tables'
        gradients."""
        cfg = self.config
        g = self.dropout("embed.dropout_mask", g)
        if cfg.embed_layer_norm:
            g = self.layer_norm("embed.ln", g)
        # embed.sum = tokens + positions + token types: each term receives the same gradient g.
        assert self.trace.token_ids is not None  # checked by check_backward
        self.grads["embed.W_E"] = embedding_backward(g, self.trace.token_ids, cfg.vocab_size)
        if cfg.positional == "learned":
            self.grads["embed.W_pos"] = position_embedding_backward(g, cfg.max_len)
        if cfg.type_vocab_size > 0:
            types = token_types(self.trace)
            self.grads["embed.W_type"] = embedding_backward(g, types, cfg.type_vocab_size)
        return g

    def block(self, l: int, g: np.ndarray) -> np.ndarray:
        """dL/dblocks.{l}.out (B, S, D) -> dL/dblocks.{l}.resid_pre (B, S, D)."""
        b, t = f"blocks.{l}", self.trace
        # the input of the feed-forward's add & norm is the output of the attention's
        between = t[f"{b}.ln1.out"] if self.config.norm == "post" else t[f"{b}.resid_mid"]
        g = self.add_and_norm(g, self.feed_forward, l, f"{b}.ln2", between)
        return self.add_and_norm(g, self.attention, l, f"{b}.ln1", t[f"{b}.resid_pre"])

    def add_and_norm(
        self,
        g: np.ndarray,
        sublayer: Callable[[int, np.ndarray, np.ndarray], np.ndarray],
        l: int,
        norm: str,
        x: np.ndarray,
    ) -> np.ndarray:
        """dL/d(output) -> dL/dx through one "Add & Norm" (B, S, D); ``x`` is its input::

        post-norm: out = LN(r), r = x + f(x)    dL/dr = LN'(g);  dL/dx = dL/dr + f'(dL/dr)
        pre-norm:  out = x + f(LN(x))           dL/dx = g + LN'(f'(g))
        """
        if self.config.norm == "post":
            g = self.layer_norm(norm, g)
            return g + sublayer(l, g, x)
        return g + self.layer_norm(norm, sublayer(l, g, self.trace[f"{norm}.out"]))

    def attention(self, l: int, g: np.ndarray, x: np.ndarray) -> np.ndarray:
        """dL/dblocks.{l}.attn.out (B, S, D) -> dL/dx (B, S, D), ``x`` the attention's input."""
        a, t = f"blocks.{l}.attn", self.trace
        g = self.dropout(f"{a}.out_dropout_mask", g)
        g_concat = self.linear(g, f"{a}.W_O", f"{a}.b_O", t[f"{a}.concat"])  # (B, S, D)
        g_gated = merge_heads_backward(g_concat, self.config.n_heads)  # (B, H, S, Dh)
        # concat = merge_heads(head_mask[l, h] * z_h): dL/dhead_mask[l, h] is the sum of
        # dL/dgated_h * z_h over (s, d), and dL/dz_h = head_mask[l, h] * dL/dgated_h
        self.head_mask_grad[:, l] = np.einsum("bhsd,bhsd->bh", g_gated, t[f"{a}.z"])  # (B, H)
        g_z = g_gated if self.head_mask is None else g_gated * self.head_mask[l][:, None, None]
        g_q, g_k, g_v = scaled_dot_product_attention_backward(
            g_z,
            t[f"{a}.q"],
            t[f"{a}.k"],
            t[f"{a}.v"],
            t[f"{a}.weights"],
            scale=self.config.scale_scores,
            dropout_p=self.p_drop,
            dropout_mask=t[f"{a}.weights_dropout_mask"] if self.p_drop else None,
            record=self.keep_weights_grad,
            name=a,
        )  # each (B, H, S, Dh)
        if f"{a}.weights" in self.constant_weights:  # patched weights do not depend on q, k
            g_q, g_k = np.zeros_like(g_q), np.zeros_like(g_k)
        g_x = np.zeros_like(x)
        for n, g_head in (("Q", g_q), ("K", g_k), ("V", g_v)):  # x feeds all three
            g_x += self.linear(split_heads_backward(g_head), f"{a}.W_{n}", f"{a}.b_{n}", x)
        return g_x

    def keep_weights_grad(self, name: str, grad: np.ndarray) -> np.ndarray:
        """Keep ``dL/d{name}`` of each block's attention weights (for :class:`Gradients`)."""
        self.attn_weights_grads[name] = grad
        return grad

    def feed_forward(self, l: int, g: np.ndarray, x: np.ndarray) -> np.ndarray:
        """dL/dblocks.{l}.ffn.out (B, S, D) -> dL/dx (B, S, D), ``x`` the layer's input."""
        f, t = f"blocks.{l}.ffn", self.trace
        g = self.dropout(f"{f}.out_dropout_mask", g)
        act = self.redo_dropout(f"{f}.act_dropout_mask", t[f"{f}.act"])  # (B, S, F)
        g_act = self.linear(g, f"{f}.W_2", f"{f}.b_2", act)  # (B, S, F)
        g_act = self.dropout(f"{f}.act_dropout_mask", g_act)
        g_pre = ACTIVATION_BACKWARDS[self.config.activation](g_act, t[f"{f}.pre"])  # (B, S, F)
        return self.linear(g_pre, f"{f}.W_1", f"{f}.b_1", x)  # (B, S, D)

    def layer_norm(self, name: str, g: np.ndarray) -> np.ndarray:
        """dL/d{name}.out -> dL/d(its input) (B, S, D), storing dL/dgamma and dL/dbeta."""
        gamma = self.params[f"{name}.gamma"]
        normed, std = self.trace[f"{name}.normed"], self.trace[f"{name}.std"]
        g_x, self.grads[f"{name}.gamma"], self.grads[f"{name}.beta"] = layer_norm_backward(
            g, normed, std, gamma
        )
        return g_x

    def linear(self, g: np.ndarray, W: str, b: str, x: np.ndarray) -> np.ndarray:
        """dL/d(x @ W + b) -> dL/dx (..., d_in), storing dL/dW and dL/db; ``x`` the input."""
        g_x, self.grads[W], self.grads[b] = linear_backward(g, x, self.params[W])
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
