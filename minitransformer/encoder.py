"""The transformer encoder: embeddings, then blocks of attention and feed-forward layers.

Vaswani et al. 2017 (post-norm), BERT (Devlin et al. 2019: learned positions, token types,
embedding LayerNorm, GELU), and the pre-norm variant (Xiong et al. 2020). One block::

    post-norm (Vaswani, BERT)               pre-norm
    h   = LN1(x + MHA(x))                   h   = x + MHA(LN1(x))
    out = LN2(h + FFN(h))                   out = h + FFN(LN2(h))

where ``MHA`` is multi-head self-attention and ``FFN(h) = act(h W_1 + b_1) W_2 + b_2``.

The forward pass is written once, in :meth:`Encoder._forward`, and calls ``x = record(name,
x)`` for every intermediate; :meth:`Encoder.run_with_trace` keeps them in a
:class:`~minitransformer.trace.Trace`, :meth:`Encoder.__call__` throws them away. ``record``
returns the value the pass continues with: the value itself, or a replacement given with
``patch=`` (activation patching, Vig et al. 2020; Meng et al. 2022). A ``head_mask``
(Michel et al. 2019) scales each head's output before the heads are concatenated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from minitransformer.attention import (
    causal_mask,
    dot_products,
    merge_heads,
    padding_mask,
    scale_dot_products,
    split_heads,
)
from minitransformer.backprop import Gradients, backward
from minitransformer.config import EncoderConfig
from minitransformer.functional import ACTIVATIONS, dropout, linear, masked_softmax, normalize
from minitransformer.params import init_params, validate_params
from minitransformer.positional import sinusoidal_positional_encoding
from minitransformer.tokenizer import BatchEncoding
from minitransformer.trace import Trace, expected_names, select_names, template_of
from minitransformer.validation import (
    as_array,
    as_head_mask,
    as_mask,
    as_token_ids,
    as_token_type_ids,
    check_bool,
    check_finite,
    check_generator,
    check_int,
)

if TYPE_CHECKING:
    from minitransformer.heads import Classifier

Record = Callable[[str, np.ndarray], np.ndarray]
Patch = Mapping[str, "np.ndarray | Callable[[np.ndarray], np.ndarray]"]

#: Trace entries that ``patch=`` may replace: those the forward pass reads back after recording
#: them (``{l}`` is any block). Not patchable: the LayerNorm ``mean``/``std`` (recorded for the
#: backward pass only) and the dropout masks.
PATCHABLE = (
    "embed.tokens", "embed.positions", "embed.token_types", "embed.sum", "embed.ln.normed",
    "embed.ln.out", "embed.out",
    "blocks.{l}.attn.q", "blocks.{l}.attn.k", "blocks.{l}.attn.v", "blocks.{l}.attn.qk",
    "blocks.{l}.attn.scores",
    "blocks.{l}.attn.mask", "blocks.{l}.attn.weights", "blocks.{l}.attn.z",
    "blocks.{l}.attn.concat", "blocks.{l}.attn.out", "blocks.{l}.resid_mid",
    "blocks.{l}.ln1.normed", "blocks.{l}.ln1.out", "blocks.{l}.ffn.pre", "blocks.{l}.ffn.act",
    "blocks.{l}.ffn.out", "blocks.{l}.resid_post", "blocks.{l}.ln2.normed", "blocks.{l}.ln2.out",
    "blocks.{l}.out", "final_ln.normed", "final_ln.out",
)  # fmt: skip


def _ignore(name: str, value: np.ndarray) -> np.ndarray:
    """The recorder of an untraced forward pass: keep nothing, change nothing."""
    return value


def check_patch(patch: Patch | None, config: EncoderConfig) -> dict[str, Any]:
    """Validate the names of a ``patch=`` mapping: each must be a :data:`PATCHABLE` entry that
    this model records. Returns it as a dict (empty for None)."""
    if patch is None:
        return {}
    if not isinstance(patch, Mapping):
        raise TypeError(
            "patch must be a mapping of trace name -> array or function, "
            f"got {type(patch).__name__}"
        )
    recorded = set(expected_names(config))
    for name in patch:
        if not isinstance(name, str):
            raise TypeError(f"patch keys must be trace names (str), got {type(name).__name__}")
        if template_of(name) not in PATCHABLE:
            raise ValueError(
                f"patch: {name!r} cannot be patched; patchable entries are {list(PATCHABLE)}"
            )
        if name not in recorded:
            raise ValueError(f"patch: {name!r} is not recorded by this model ({config})")
    return dict(patch)


def _patched(name: str, value: np.ndarray, replacement: Any) -> np.ndarray:
    """The replacement of trace entry ``name``: an array of its shape, or ``f(value)``.

    Always a new array (the trace freezes what it records, and must not freeze the caller's
    array), of the entry's dtype: bool 0/1 for ``attn.mask``, finite numbers otherwise.
    """
    label = f"patch for {name!r}"
    new = as_array(replacement(value) if callable(replacement) else replacement, label)
    if new.shape != value.shape:
        raise ValueError(f"{label} must have shape {value.shape}, got {new.shape}")
    if value.dtype == bool:  # the attention mask: True where a query may attend
        if new.dtype != bool and not (
            np.issubdtype(new.dtype, np.integer) and np.isin(new, (0, 1)).all()
        ):
            raise ValueError(f"{label} must be bool or 0/1 (True: may attend), got {new.dtype}")
        return new.astype(bool)  # a copy
    if not np.issubdtype(new.dtype, np.number) or np.issubdtype(new.dtype, np.complexfloating):
        raise TypeError(f"{label} must hold real numbers, got dtype {new.dtype}")
    with np.errstate(over="ignore"):  # an overflow to inf is reported just below
        copy = np.array(new, dtype=value.dtype)
    check_finite(label, copy)
    return copy


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

    # ------------------------------------------------------------------ public passes
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
            1 for real tokens, 0 for padding. None: every token is real.
        token_type_ids : int array of the same shape, optional
            Segment ids for models with token-type embeddings (default all 0).
        head_mask, patch
            As in :meth:`run_with_trace`.

        Returns
        -------
        hidden : ndarray of shape (B, S, D)
        """
        ids, pad, types = self._check_inputs(token_ids, mask, token_type_ids)
        gates = as_head_mask(head_mask, self.config)
        patches = check_patch(patch, self.config)
        if not patches:
            return self._forward(ids, pad, types, _ignore, None, gates)

        def record(name: str, value: np.ndarray) -> np.ndarray:
            return _patched(name, value, patches[name]) if name in patches else value

        return self._forward(ids, pad, types, record, None, gates)

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
            The gates ``xi`` of Michel et al. (2019): head h of block l contributes
            ``xi[l, h] * z_h`` to ``attn.concat``, so ``MHA(x) = sum_h xi_h z_h W_O[h] + b_O``.
            1 keeps a head, 0 removes it (zero-ablation). ``attn.z`` records the heads' outputs
            *before* the gates. None (default): every head kept, at no cost.
            :meth:`backward` needs the same ``head_mask`` and returns ``dL/dxi``.
        patch : mapping of trace name -> array or function, optional
            Activation patching: replace each named entry as it is computed, and continue the
            pass from the replacement. The value is an array of the entry's shape (e.g. the same
            entry recorded on another input), or a function ``f(value) -> replacement`` (e.g. to
            replace only some heads). Names must be in :data:`PATCHABLE` (the entries the pass
            reads back). The trace records the replacement. Gradients from :meth:`backward`
            treat a patched entry as if it had been computed: those with respect to the entry
            and everything after it are right, those before it are not -- except for patched
            attention weights named in ``backward(..., constants=)``, where the gradient
            stops (the exact gradient of the patched pass).

        Returns
        -------
        hidden : ndarray of shape (B, S, D)
            The same read-only array as the trace's last entry (when ``keep`` keeps it);
            ``hidden.copy()`` to edit it.
        trace : Trace

        Raises
        ------
        NonFiniteError
            If a number overflows to inf or NaN on the way (a ``ValueError`` naming the
            trace entry): see :func:`~minitransformer.functional.masked_softmax` and
            :func:`~minitransformer.functional.normalize`.
        """
        ids, pad, types = self._check_inputs(token_ids, mask, token_type_ids)
        training = check_bool("training", training)
        rng = check_generator("rng", rng)
        gates = as_head_mask(head_mask, self.config)
        patches = check_patch(patch, self.config)
        names = expected_names(self.config, training)
        wanted = None if keep is None else set(select_names(names, keep))
        store: dict[str, np.ndarray] = {}

        def record(name: str, value: np.ndarray) -> np.ndarray:
            if name in patches:
                value = _patched(name, value, patches[name])
            if wanted is None or name in wanted:
                store[name] = value
            return value

        dropout_rng = None
        if training and self.config.dropout > 0:
            dropout_rng = rng if rng is not None else np.random.default_rng(0)
        hidden = self._forward(ids, pad, types, record, dropout_rng, gates)
        trace = Trace(
            store,
            self.config,
            token_ids=ids,
            padding_mask=np.ones(ids.shape, dtype=bool) if pad is None else pad,
            token_type_ids=types,
            head_mask=gates,
            patched=set(patches) & set(store),
        )
        # the trace holds read-only views; hand back the trace's, so editing hidden cannot
        # change the trace behind its back
        return (trace[names[-1]] if names[-1] in trace else hidden), trace

    def backward(
        self,
        trace: Trace,
        grad_hidden: Any,
        token_ids: Any,
        token_type_ids: Any = None,
        head_mask: Any = None,
        constants: Iterable[str] = (),
    ) -> Gradients:
        """Gradients of a loss from ``dL/dhidden`` and this model's trace of the forward pass.

        See :func:`minitransformer.backprop.backward`, which this calls (``constants``: patched
        attention weights the gradient stops at).
        """
        return backward(self, trace, grad_hidden, token_ids, token_type_ids, head_mask, constants)

    # ------------------------------------------------------------------ saving
    def save(
        self,
        path: str | Path,
        classifier: Classifier | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Path:
        """Save the config and every parameter to an ``.npz`` file (no pickle).

        See :func:`minitransformer.checkpoint.save_checkpoint`, which this calls.
        """
        from minitransformer.checkpoint import save_checkpoint  # it imports this module

        return save_checkpoint(path, self, classifier, metadata)

    @classmethod
    def load(cls, path: str | Path) -> Encoder:
        """The encoder saved in ``path`` by :meth:`save`.

        See :func:`minitransformer.checkpoint.load_checkpoint` (which also returns the
        classification head and metadata, when saved).
        """
        from minitransformer.checkpoint import load_checkpoint  # it imports this module

        return load_checkpoint(path).model

    # ------------------------------------------------------------------- the pass
    def _position_rows(self, seq_len: int) -> np.ndarray:
        """The (S, D) rows added for positions 0 .. S-1: sinusoidal or learned."""
        if self.config.positional == "learned":
            return self.params["embed.W_pos"][:seq_len]
        assert self.positional_encoding is not None  # positional == "sinusoidal"
        return self.positional_encoding[:seq_len]

    def _check_inputs(
        self, token_ids: Any, mask: Any, token_type_ids: Any
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        if isinstance(token_ids, BatchEncoding):  # the tokenizer's output: ids, mask and types
            if mask is not None or token_type_ids is not None:
                raise ValueError("pass a BatchEncoding alone: it holds the mask and token types")
            batch = token_ids
            token_ids, mask = batch.input_ids, batch.attention_mask
            token_type_ids = batch.token_type_ids if self.config.type_vocab_size else None
        ids = as_token_ids(token_ids, self.config)
        pad = None if mask is None else as_mask(mask, ids.shape)
        types = as_token_type_ids(token_type_ids, ids.shape, self.config)
        return ids, pad, types

    def _forward(
        self,
        ids: np.ndarray,
        pad: np.ndarray | None,
        types: np.ndarray,
        record: Record,
        rng: np.random.Generator | None,
        gates: np.ndarray | None = None,
    ) -> np.ndarray:
        """ids (B, S) -> hidden (B, S, D), calling ``x = record(name, x)`` for every intermediate.

        ``rng`` is None in evaluation; in training it draws the dropout masks. ``gates`` is the
        (n_layers, n_heads) head mask, or None.
        """
        cfg, p = self.config, self.params
        B, S = ids.shape

        x = record("embed.tokens", p["embed.W_E"][ids])  # (B, S, D)
        if cfg.positional != "none":
            positions = record("embed.positions", self._position_rows(S))  # (S, D)
            x = x + positions
        if cfg.type_vocab_size > 0:
            token_types = record("embed.token_types", p["embed.W_type"][types])  # (B, S, D)
            x = x + token_types
        x = record("embed.sum", x)
        if cfg.embed_layer_norm:
            x = self._layer_norm("embed.ln", x, record)
        x = self._dropout("embed.dropout_mask", x, record, rng)
        x = record("embed.out", x)

        mask = np.ones((B, 1, 1, S), dtype=bool) if pad is None else padding_mask(pad)
        if cfg.causal:
            mask = mask & causal_mask(S)  # (B, 1, S, S)

        for l in range(cfg.n_layers):
            x = self._block(l, x, mask, record, rng, None if gates is None else gates[l])
        if cfg.norm == "pre":
            x = self._layer_norm("final_ln", x, record)
        # Every LayerNorm and softmax checks its input on the way (see normalize and
        # masked_softmax); only the last LayerNorm's gamma * x_hat + beta is left to check.
        check_finite("the encoder's output", x, "the last LayerNorm's gamma or beta overflowed")
        return x

    def _block(
        self,
        l: int,
        x: np.ndarray,
        mask: np.ndarray,
        record: Record,
        rng: np.random.Generator | None,
        gates: np.ndarray | None,
    ) -> np.ndarray:
        """One encoder block: (B, S, D) -> (B, S, D). ``gates``: (H,) head gates or None."""
        b = f"blocks.{l}"
        if self.config.norm == "post":
            a = self._attention(b, x, mask, record, rng, gates)
            resid_mid = x + self._dropout(f"{b}.attn.out_dropout_mask", a, record, rng)
            resid_mid = record(f"{b}.resid_mid", resid_mid)
            h = self._layer_norm(f"{b}.ln1", resid_mid, record)
            f = self._feed_forward(b, h, record, rng)
            resid_post = h + self._dropout(f"{b}.ffn.out_dropout_mask", f, record, rng)
            resid_post = record(f"{b}.resid_post", resid_post)
            out = self._layer_norm(f"{b}.ln2", resid_post, record)
        else:
            h = self._layer_norm(f"{b}.ln1", x, record)
            a = self._attention(b, h, mask, record, rng, gates)
            resid_mid = x + self._dropout(f"{b}.attn.out_dropout_mask", a, record, rng)
            resid_mid = record(f"{b}.resid_mid", resid_mid)
            f = self._feed_forward(b, self._layer_norm(f"{b}.ln2", resid_mid, record), record, rng)
            out = resid_mid + self._dropout(f"{b}.ffn.out_dropout_mask", f, record, rng)
            out = record(f"{b}.resid_post", out)
        return record(f"{b}.out", out)

    def _attention(
        self,
        b: str,
        x: np.ndarray,
        mask: np.ndarray,
        record: Record,
        rng: np.random.Generator | None,
        gates: np.ndarray | None,
    ) -> np.ndarray:
        """Multi-head self-attention: (B, S, D) -> (B, S, D). ``gates``: (H,) head gates or None."""
        p, H = self.params, self.config.n_heads
        q = split_heads(linear(x, p[f"{b}.attn.W_Q"], p[f"{b}.attn.b_Q"]), H)  # (B, H, S, Dh)
        k = split_heads(linear(x, p[f"{b}.attn.W_K"], p[f"{b}.attn.b_K"]), H)  # (B, H, S, Dh)
        v = split_heads(linear(x, p[f"{b}.attn.W_V"], p[f"{b}.attn.b_V"]), H)  # (B, H, S, Dh)
        q = record(f"{b}.attn.q", q)
        k = record(f"{b}.attn.k", k)
        v = record(f"{b}.attn.v", v)
        qk = record(f"{b}.attn.qk", dot_products(q, k))  # (B, H, S, S): every q_i . k_j
        scores = scale_dot_products(qk, self.config.d_head, self.config.scale_scores)
        scores = record(f"{b}.attn.scores", scores)  # (B, H, S, S)
        mask = record(f"{b}.attn.mask", mask)
        weights = masked_softmax(scores, mask, name=f"{b}.attn.scores")  # (B, H, S, S)
        weights = record(f"{b}.attn.weights", weights)
        used = self._dropout(f"{b}.attn.weights_dropout_mask", weights, record, rng)
        z = record(f"{b}.attn.z", used @ v)  # (B, H, S, Dh)
        if gates is not None:  # Michel et al.'s xi: head h's output scaled by gates[h]
            z = z * gates[:, None, None]  # (B, H, S, Dh) * (H, 1, 1)
        concat = record(f"{b}.attn.concat", merge_heads(z))  # (B, S, D)
        out = linear(concat, p[f"{b}.attn.W_O"], p[f"{b}.attn.b_O"])  # (B, S, D)
        return record(f"{b}.attn.out", out)

    def _feed_forward(
        self, b: str, h: np.ndarray, record: Record, rng: np.random.Generator | None
    ) -> np.ndarray:
        """Position-wise feed-forward layer: (B, S, D) -> (B, S, F) -> (B, S, D)."""
        p = self.params
        pre = record(f"{b}.ffn.pre", linear(h, p[f"{b}.ffn.W_1"], p[f"{b}.ffn.b_1"]))  # (B, S, F)
        act = record(f"{b}.ffn.act", ACTIVATIONS[self.config.activation](pre))  # (B, S, F)
        act = self._dropout(f"{b}.ffn.act_dropout_mask", act, record, rng)
        out = linear(act, p[f"{b}.ffn.W_2"], p[f"{b}.ffn.b_2"])  # (B, S, D)
        return record(f"{b}.ffn.out", out)

    def _layer_norm(self, prefix: str, x: np.ndarray, record: Record) -> np.ndarray:
        """LayerNorm over the last axis, recording its mean, std, normed and out."""
        x_hat, mean, std = normalize(x, self.config.layer_norm_eps, name=prefix)
        record(f"{prefix}.mean", mean)  # kept for the backward pass; not read back
        record(f"{prefix}.std", std)
        x_hat = record(f"{prefix}.normed", x_hat)
        out = x_hat * self.params[f"{prefix}.gamma"] + self.params[f"{prefix}.beta"]
        return record(f"{prefix}.out", out)

    def _dropout(
        self, name: str, x: np.ndarray, record: Record, rng: np.random.Generator | None
    ) -> np.ndarray:
        """Dropout in training (recording the mask under ``name``); identity otherwise."""
        if rng is None:
            return x
        out, keep = dropout(x, self.config.dropout, rng)
        record(name, keep)
        return out
