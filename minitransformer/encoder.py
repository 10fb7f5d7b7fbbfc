"""The transformer encoder: embeddings, then blocks of attention and feed-forward layers.

Vaswani et al. 2017 (post-norm), BERT (Devlin et al. 2019: learned positions, token types,
embedding LayerNorm, GELU), and the pre-norm variant (Xiong et al. 2020). One block::

    post-norm (Vaswani, BERT)               pre-norm
    x = LN1(x + MHA(x))                     x = x + MHA(LN1(x))
    x = LN2(x + FFN(x))                     x = x + FFN(LN2(x))

where ``MHA`` is multi-head self-attention and ``FFN(x) = act(x W_1 + b_1) W_2 + b_2``: each
line is one "Add & Norm" around a sublayer (:meth:`ForwardPass.add_and_norm`).

The forward pass is :class:`ForwardPass`, one method per step, each running the textbook
functions of :mod:`~minitransformer.functional` and :mod:`~minitransformer.attention` and
calling ``x = record(name, x)`` for every intermediate. :meth:`Encoder.run_with_trace` keeps
them in a :class:`~minitransformer.trace.Trace`; :meth:`Encoder.__call__` keeps none. ``record``
returns the value the pass continues with: the value itself, or a replacement given with
``patch=`` (:mod:`~minitransformer.patching`). A ``head_mask`` (Michel et al. 2019) scales each
head's output before the heads are concatenated. The backward pass,
:class:`~minitransformer.backprop.BackwardPass`, has a method of the same name for each step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from minitransformer.attention import (
    causal_mask,
    merge_heads,
    padding_mask,
    scaled_dot_product_attention,
    split_heads,
)
from minitransformer.config import EncoderConfig
from minitransformer.functional import (
    ACTIVATIONS,
    Record,
    dropout,
    layer_norm,
    linear,
    record_nothing,
)
from minitransformer.inputs import (
    as_head_mask,
    as_mask,
    as_token_ids,
    as_token_type_ids,
    split_token_batch,
)
from minitransformer.memory import keep_freed_memory
from minitransformer.params import init_params, validate_params
from minitransformer.patching import Patch, check_patch, patched_value
from minitransformer.positional import sinusoidal_positional_encoding
from minitransformer.trace import Trace, expected_names, select_names
from minitransformer.validation import check_bool, check_finite, check_generator, check_int


class Encoder:
    """A transformer encoder whose forward pass records every intermediate by name.

    Parameters
    ----------
    config : EncoderConfig
    seed : int
        Seed of the random initial parameters (ignored when ``params`` is given).
    params : dict of name -> ndarray, optional
        Parameters to use instead of random ones; names and shapes as in
        :mod:`minitransformer.params`. Checked: a missing, extra, misshapen or non-finite
        tensor raises an error naming it. The model keeps copies, so training it never
        changes the arrays you passed.

    Attributes
    ----------
    config : EncoderConfig
    params : dict of name -> ndarray
        The parameters, a plain dict you may read and edit.
    positional_encoding : ndarray of shape (max_len, D), or None
        The sinusoidal table (``positional="sinusoidal"``), computed once.

    Notes
    -----
    Creating an Encoder asks the C library's ``malloc`` to keep freed memory for the next
    pass rather than return it to the operating system
    (:func:`~minitransformer.memory.keep_freed_memory`): a traced pass runs a third faster,
    and the process keeps up to 512 MB more resident memory after freeing a large trace.

    Examples
    --------
    >>> model = Encoder(EncoderConfig(vocab_size=10, d_model=8, n_heads=2), seed=0)
    >>> hidden, trace = model.run_with_trace([1, 2, 3])
    >>> hidden.shape, trace["blocks.0.attn.weights"].shape
    ((1, 3, 8), (1, 2, 3, 3))
    """

    def __init__(
        self, config: EncoderConfig, seed: int = 0, params: dict[str, np.ndarray] | None = None
    ):
        if not isinstance(config, EncoderConfig):
            raise TypeError(f"config must be an EncoderConfig, got {type(config).__name__}")
        self.config = config
        keep_freed_memory()  # fresh memory costs page faults: reuse what earlier passes freed
        if params is None:
            self.params = init_params(config, np.random.default_rng(check_int("seed", seed, 0)))
        else:
            self.params = validate_params(config, params)
        self.positional_encoding = (
            sinusoidal_positional_encoding(config.max_len, config.d_model, config.np_dtype)
            if config.positional == "sinusoidal"
            else None
        )

    def __repr__(self) -> str:
        n = sum(p.size for p in self.params.values())
        return f"Encoder({self.config}, {n:,} parameters)"

    def __call__(
        self,
        token_ids: Any,
        mask: Any = None,
        *,
        token_type_ids: Any = None,
        head_mask: Any = None,
        patch: Patch | None = None,
    ) -> np.ndarray:
        """The forward pass without a trace.

        Parameters
        ----------
        token_ids : int array of shape (S,) or (B, S), or BatchEncoding
            Token ids, or the tokenizer's output for a batch of texts (which brings its
            ``attention_mask`` and ``token_type_ids``; pass no ``mask`` then).
        mask : bool or 0/1 array of the same shape, optional
            The padding mask: 1 for real tokens, 0 for padding. None: every token is real.
        token_type_ids : int array of the same shape, optional
            Segment ids for models with token-type embeddings (default all 0).
        head_mask, patch
            As in :meth:`run_with_trace`.

        Returns
        -------
        hidden : ndarray of shape (B, S, D)
        """
        ids, padding, types = self.check_inputs(token_ids, mask, token_type_ids)
        patches = check_patch(patch, self.config)

        def record(name: str, value: np.ndarray) -> np.ndarray:  # keep nothing, patch
            return patched_value(patches, name, value)

        head_mask = as_head_mask(head_mask, self.config)
        return ForwardPass(self, padding, record, head_mask=head_mask).run(ids, types)

    def run_with_trace(
        self,
        token_ids: Any,
        mask: Any = None,
        *,
        token_type_ids: Any = None,
        keep: str | Iterable[str] | None = None,
        training: bool = False,
        rng: np.random.Generator | None = None,
        head_mask: Any = None,
        patch: Patch | None = None,
    ) -> tuple[np.ndarray, Trace]:
        """The forward pass, returning the hidden states and the trace of every intermediate.

        Parameters
        ----------
        token_ids, mask, token_type_ids
            As in :meth:`__call__`.
        keep : name, glob pattern or list of them, optional
            Record only matching names (e.g. ``"*.attn.weights"``) to save memory on long
            inputs. A pattern that matches no name raises ``ValueError``.
        training : bool
            Apply dropout (``config.dropout``) and record its masks. Off by default.
        rng : numpy.random.Generator, optional
            Source of the dropout masks when training (default: a generator seeded with 0).
        head_mask : array of shape (n_layers, n_heads), optional
            Michel et al. (2019)'s gates on the heads: head h of block l contributes
            ``head_mask[l, h] * z_h`` to ``attn.concat``, so
            ``MHA(x) = sum_h head_mask[l, h] z_h W_O[h] + b_O``. 1 keeps a head, 0 removes it
            (zero-ablation). ``attn.z`` records the heads' outputs *before* the head mask.
            None (default): every head kept, at no cost. The trace keeps it, and
            :func:`~minitransformer.backprop.backward` returns ``dL/dhead_mask``.
        patch : mapping of trace name -> array or function, optional
            Activation patching: replace each named entry as it is computed, and continue the
            pass from the replacement. The value is an array of the entry's shape (e.g. the same
            entry recorded on another input), or a function ``f(value) -> replacement`` (e.g. to
            replace only some heads). Names must be in
            :data:`~minitransformer.patching.PATCHABLE` (the entries the pass reads back). The
            trace records the replacement and lists its name in ``trace.patched``. Gradients
            from :func:`~minitransformer.backprop.backward` treat a patched entry as if it had
            been computed: those with respect to the entry and everything after it are right,
            those before it are not -- except for patched attention weights named in
            ``backward(..., constants=)``, where the gradient stops (the exact gradient of the
            patched pass).

        Returns
        -------
        hidden : ndarray of shape (B, S, D)
            The same read-only array as the trace's last entry (when ``keep`` keeps it);
            ``hidden.copy()`` to edit it.
        trace : Trace
            Every recorded entry, and the inputs of the pass (``token_ids``,
            ``padding_mask``, ``token_type_ids``, ``head_mask``, ``patched``).

        Raises
        ------
        NonFiniteError
            If a number overflows to inf or NaN on the way (a ``ValueError`` naming the
            trace entry): see :func:`~minitransformer.functional.masked_softmax` and
            :func:`~minitransformer.functional.layer_norm`.
        """
        ids, padding, types = self.check_inputs(token_ids, mask, token_type_ids)
        training = check_bool("training", training)
        rng = check_generator("rng", rng)
        head_mask = as_head_mask(head_mask, self.config)
        patches = check_patch(patch, self.config)
        names = expected_names(self.config, training)
        wanted = None if keep is None else set(select_names(names, keep))
        store: dict[str, np.ndarray] = {}

        def record(name: str, value: np.ndarray) -> np.ndarray:  # keep the wanted ones, patch
            value = patched_value(patches, name, value)
            if wanted is None or name in wanted:
                store[name] = value
            return value

        dropout_rng = None
        if training and self.config.dropout > 0:
            dropout_rng = rng if rng is not None else np.random.default_rng(0)
        forward = ForwardPass(self, padding, record, dropout_rng, head_mask)
        hidden = forward.run(ids, types)
        trace = Trace(
            store,
            self.config,
            token_ids=ids,
            padding_mask=padding,
            token_type_ids=types,
            head_mask=head_mask,
            patched=set(patches) & set(store),
        )
        # the trace holds read-only views; hand back the trace's, so editing hidden cannot
        # change the trace behind its back
        return (trace[names[-1]] if names[-1] in trace else hidden), trace

    def check_inputs(
        self, token_ids: Any, mask: Any, token_type_ids: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The inputs of a pass, checked: ids (B, S), padding mask (B, S) bool (all True when
        ``mask`` is None) and token types (B, S) (all 0 when None). ``token_ids`` may be a
        tokenizer's batch, which brings its mask and types (dropped for a model without
        token-type embeddings)."""
        token_ids, mask, token_type_ids = split_token_batch(
            token_ids, mask, token_type_ids, self.config
        )
        ids = as_token_ids(token_ids, self.config)
        padding = np.ones(ids.shape, dtype=bool) if mask is None else as_mask(mask, ids.shape)
        types = as_token_type_ids(token_type_ids, ids.shape, self.config)
        return ids, padding, types


class ForwardPass:
    """One forward pass of an :class:`Encoder`: a method per step, in the order they run.

    Each method takes the step's input and returns its output, recording every intermediate
    with ``x = self.record(name, x)``. What is the same for every step -- the parameters, the
    recorder, the dropout and the masks -- is held here once, so the methods read like their
    equations. :class:`~minitransformer.backprop.BackwardPass` has a method of the same name
    for each step, taking the gradient of its output.

    Parameters
    ----------
    model : Encoder
    padding : bool ndarray of shape (B, S)
        The padding mask, True for real tokens.
    record : function (name, array) -> array
        Called with every intermediate; the pass continues with what it returns.
    rng : numpy.random.Generator, optional
        Draws the dropout masks; None: no dropout (evaluation).
    head_mask : ndarray of shape (n_layers, n_heads), optional
        Each head's gate (see :meth:`Encoder.run_with_trace`); None: every head kept.
    """

    def __init__(
        self,
        model: Encoder,
        padding: np.ndarray,
        record: Record = record_nothing,
        rng: np.random.Generator | None = None,
        head_mask: np.ndarray | None = None,
    ):
        self.config, self.params = model.config, model.params
        self.positional_encoding = model.positional_encoding
        self.record = record
        self.rng = rng  # draws the dropout masks; None: no dropout
        self.p_drop = model.config.dropout if rng is not None else 0.0
        self.head_mask = head_mask
        S = padding.shape[1]
        self.attn_mask = padding_mask(padding)  # (B, 1, 1, S): no query attends to padding
        if model.config.causal:
            self.attn_mask = self.attn_mask & causal_mask(S)  # (B, 1, S, S): nor to later keys

    def run(self, token_ids: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        """The whole pass: token ids (B, S) -> hidden states (B, S, D)."""
        x = self.embed(token_ids, token_type_ids)  # (B, S, D)
        for l in range(self.config.n_layers):
            x = self.block(l, x)  # (B, S, D)
        if self.config.norm == "pre":
            x = self.layer_norm("final_ln", x)
        # Every LayerNorm and softmax checks its input on the way (see layer_norm and
        # masked_softmax); only the last LayerNorm's gamma * x_hat + beta is left to check.
        check_finite("the encoder's output", x, "the last LayerNorm's gamma or beta overflowed")
        return x

    def embed(self, token_ids: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        """Token ids (B, S) -> the input of block 0, ``embed.out`` (B, S, D)."""
        cfg, p = self.config, self.params
        x = self.record("embed.tokens", p["embed.W_E"][token_ids])  # (B, S, D)
        if cfg.positional != "none":
            x = x + self.record("embed.positions", self.positions(token_ids.shape[1]))  # (S, D)
        if cfg.type_vocab_size > 0:
            x = x + self.record("embed.token_types", p["embed.W_type"][token_type_ids])
        x = self.record("embed.sum", x)  # (B, S, D)
        if cfg.embed_layer_norm:
            x = self.layer_norm("embed.ln", x)
        x = self.dropout("embed.dropout_mask", x)
        return self.record("embed.out", x)

    def positions(self, seq_len: int) -> np.ndarray:
        """The (S, D) rows added for positions 0 .. S-1: sinusoidal or learned."""
        if self.config.positional == "learned":
            return self.params["embed.W_pos"][:seq_len]
        assert self.positional_encoding is not None  # positional == "sinusoidal"
        return self.positional_encoding[:seq_len]

    def block(self, l: int, x: np.ndarray) -> np.ndarray:
        """Encoder block ``l``: (B, S, D) -> (B, S, D), attention then feed-forward."""
        b = f"blocks.{l}"
        x = self.record(f"{b}.resid_pre", x)
        x = self.add_and_norm(x, self.attention, l, f"{b}.ln1", f"{b}.resid_mid")
        x = self.add_and_norm(x, self.feed_forward, l, f"{b}.ln2", f"{b}.resid_post")
        return self.record(f"{b}.out", x)

    def add_and_norm(
        self,
        x: np.ndarray,
        sublayer: Callable[[int, np.ndarray], np.ndarray],
        l: int,
        norm: str,
        resid: str,
    ) -> np.ndarray:
        """One sublayer of block ``l`` with its residual connection and its LayerNorm ``norm``
        ("Add & Norm", Vaswani et al.): (B, S, D) -> (B, S, D). The sum is recorded as
        ``resid``::

            post-norm: LN(x + sublayer(x))          pre-norm: x + sublayer(LN(x))
        """
        if self.config.norm == "post":
            return self.layer_norm(norm, self.record(resid, x + sublayer(l, x)))
        return self.record(resid, x + sublayer(l, self.layer_norm(norm, x)))

    def attention(self, l: int, x: np.ndarray) -> np.ndarray:
        """Multi-head self-attention of block ``l``: (B, S, D) -> (B, S, D)."""
        a, H = f"blocks.{l}.attn", self.config.n_heads
        # (B, S, D) -> (B, H, S, Dh): each head's queries, keys and values
        q = self.record(f"{a}.q", split_heads(self.linear(x, f"{a}.W_Q", f"{a}.b_Q"), H))
        k = self.record(f"{a}.k", split_heads(self.linear(x, f"{a}.W_K", f"{a}.b_K"), H))
        v = self.record(f"{a}.v", split_heads(self.linear(x, f"{a}.W_V", f"{a}.b_V"), H))
        z, _, _ = scaled_dot_product_attention(
            q,
            k,
            v,
            self.attn_mask,
            scale=self.config.scale_scores,
            dropout_p=self.p_drop,
            rng=self.rng,
            record=self.record,
            name=a,
        )  # records attn.qk, scores, mask and weights; z: (B, H, S, Dh)
        z = self.record(f"{a}.z", z)
        if self.head_mask is not None:  # head h's output scaled by head_mask[l, h]
            z = z * self.head_mask[l][:, None, None]  # (B, H, S, Dh) * (H, 1, 1)
        concat = self.record(f"{a}.concat", merge_heads(z))  # (B, S, D)
        out = self.record(f"{a}.out", self.linear(concat, f"{a}.W_O", f"{a}.b_O"))  # (B, S, D)
        return self.dropout(f"{a}.out_dropout_mask", out)

    def feed_forward(self, l: int, x: np.ndarray) -> np.ndarray:
        """Position-wise feed-forward layer of block ``l``: (B, S, D) -> (B, S, F) -> (B, S, D)."""
        f = f"blocks.{l}.ffn"
        pre = self.record(f"{f}.pre", self.linear(x, f"{f}.W_1", f"{f}.b_1"))  # (B, S, F)
        act = self.record(f"{f}.act", ACTIVATIONS[self.config.activation](pre))  # (B, S, F)
        act = self.dropout(f"{f}.act_dropout_mask", act)
        out = self.record(f"{f}.out", self.linear(act, f"{f}.W_2", f"{f}.b_2"))  # (B, S, D)
        return self.dropout(f"{f}.out_dropout_mask", out)

    def layer_norm(self, name: str, x: np.ndarray) -> np.ndarray:
        """LayerNorm ``name`` (``"blocks.0.ln1"``): (B, S, D) -> (B, S, D), recording its
        mean, std, normed and out."""
        gamma, beta = self.params[f"{name}.gamma"], self.params[f"{name}.beta"]
        eps = self.config.layer_norm_eps
        return layer_norm(x, gamma, beta, eps, record=self.record, name=name)

    def linear(self, x: np.ndarray, W: str, b: str) -> np.ndarray:
        """``x @ W + b`` with the parameters named ``W`` and ``b``: (..., d_in) -> (..., d_out)."""
        return linear(x, self.params[W], self.params[b])

    def dropout(self, name: str, x: np.ndarray) -> np.ndarray:
        """Dropout in training, recording its mask as ``name``; the identity otherwise."""
        if self.rng is None:
            return x
        out, keep = dropout(x, self.p_drop, self.rng)
        self.record(name, keep)
        return out
