"""The transformer encoder: embeddings, then blocks of attention and feed-forward layers.

Vaswani et al. 2017 (post-norm), BERT (Devlin et al. 2019: learned positions, token types,
embedding LayerNorm, GELU), and the pre-norm variant (Xiong et al. 2020). One block::

    post-norm (Vaswani, BERT)               pre-norm
    h   = LN1(x + MHA(x))                   h   = x + MHA(LN1(x))
    out = LN2(h + FFN(h))                   out = h + FFN(LN2(h))

where ``MHA`` is multi-head self-attention and ``FFN(h) = act(h W_1 + b_1) W_2 + b_2``.

The forward pass is written once, in :meth:`Encoder._forward`, and calls ``record(name,
array)`` for every intermediate; :meth:`Encoder.run_with_trace` keeps them in a
:class:`~minitransformer.trace.Trace`, :meth:`Encoder.__call__` throws them away.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from minitransformer.attention import (
    attention_scores,
    causal_mask,
    merge_heads,
    padding_mask,
    split_heads,
)
from minitransformer.backprop import Gradients, backward
from minitransformer.config import EncoderConfig
from minitransformer.functional import ACTIVATIONS, dropout, linear, masked_softmax, normalize
from minitransformer.params import init_params, validate_params
from minitransformer.positional import sinusoidal_positional_encoding
from minitransformer.trace import Trace, expected_names, select_names
from minitransformer.validation import as_mask, as_token_ids, as_token_type_ids

if TYPE_CHECKING:
    from minitransformer.heads import Classifier

Record = Callable[[str, np.ndarray], None]


def _ignore(name: str, value: np.ndarray) -> None:
    """The recorder of an untraced forward pass: keep nothing."""


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
        tensor raises an error naming it.

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
            self.params = init_params(config, np.random.default_rng(seed))
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
        self, token_ids: Any, mask: Any = None, *, token_type_ids: Any = None
    ) -> np.ndarray:
        """The forward pass without a trace.

        Parameters
        ----------
        token_ids : int array of shape (S,) or (B, S)
        mask : bool or 0/1 array of the same shape, optional
            1 for real tokens, 0 for padding. None: every token is real.
        token_type_ids : int array of the same shape, optional
            Segment ids for models with token-type embeddings (default all 0).

        Returns
        -------
        hidden : ndarray of shape (B, S, D)
        """
        ids, pad, types = self._check_inputs(token_ids, mask, token_type_ids)
        return self._forward(ids, pad, types, _ignore, None)

    def run_with_trace(
        self,
        token_ids: Any,
        mask: Any = None,
        *,
        token_type_ids: Any = None,
        keep: str | Iterable[str] | None = None,
        training: bool = False,
        rng: np.random.Generator | None = None,
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

        Returns
        -------
        hidden : ndarray of shape (B, S, D)
            The same read-only array as the trace's last entry; ``hidden.copy()`` to edit it.
        trace : Trace
        """
        ids, pad, types = self._check_inputs(token_ids, mask, token_type_ids)
        names = expected_names(self.config, training)
        wanted = None if keep is None else set(select_names(names, keep))
        store: dict[str, np.ndarray] = {}

        def record(name: str, value: np.ndarray) -> None:
            if wanted is None or name in wanted:
                store[name] = value

        dropout_rng = None
        if training and self.config.dropout > 0:
            dropout_rng = rng if rng is not None else np.random.default_rng(0)
        hidden = self._forward(ids, pad, types, record, dropout_rng)
        return hidden, Trace(store, self.config)

    def backward(
        self, trace: Trace, grad_hidden: Any, token_ids: Any, token_type_ids: Any = None
    ) -> Gradients:
        """Gradients of a loss from ``dL/dhidden`` and this model's trace of the forward pass.

        See :func:`minitransformer.backprop.backward`, which this calls.
        """
        return backward(self, trace, grad_hidden, token_ids, token_type_ids)

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
    ) -> np.ndarray:
        """ids (B, S) -> hidden (B, S, D), calling ``record`` for every intermediate.

        ``rng`` is None in evaluation; in training it draws the dropout masks.
        """
        cfg, p = self.config, self.params
        B, S = ids.shape

        x = p["embed.W_E"][ids]  # (B, S, D)
        record("embed.tokens", x)
        if cfg.positional != "none":
            positions = self._position_rows(S)  # (S, D)
            record("embed.positions", positions)
            x = x + positions
        if cfg.type_vocab_size > 0:
            token_types = p["embed.W_type"][types]  # (B, S, D)
            record("embed.token_types", token_types)
            x = x + token_types
        record("embed.sum", x)
        if cfg.embed_layer_norm:
            x = self._layer_norm("embed.ln", x, record)
        x = self._dropout("embed.dropout_mask", x, record, rng)
        record("embed.out", x)

        mask = np.ones((B, 1, 1, S), dtype=bool) if pad is None else padding_mask(pad)
        if cfg.causal:
            mask = mask & causal_mask(S)  # (B, 1, S, S)

        for l in range(cfg.n_layers):
            x = self._block(l, x, mask, record, rng)
        if cfg.norm == "pre":
            x = self._layer_norm("final_ln", x, record)
        return x

    def _block(
        self,
        l: int,
        x: np.ndarray,
        mask: np.ndarray,
        record: Record,
        rng: np.random.Generator | None,
    ) -> np.ndarray:
        """One encoder block: (B, S, D) -> (B, S, D)."""
        b = f"blocks.{l}"
        if self.config.norm == "post":
            a = self._attention(b, x, mask, record, rng)
            resid_mid = x + self._dropout(f"{b}.attn.out_dropout_mask", a, record, rng)
            record(f"{b}.resid_mid", resid_mid)
            h = self._layer_norm(f"{b}.ln1", resid_mid, record)
            f = self._feed_forward(b, h, record, rng)
            resid_post = h + self._dropout(f"{b}.ffn.out_dropout_mask", f, record, rng)
            record(f"{b}.resid_post", resid_post)
            out = self._layer_norm(f"{b}.ln2", resid_post, record)
        else:
            a = self._attention(b, self._layer_norm(f"{b}.ln1", x, record), mask, record, rng)
            resid_mid = x + self._dropout(f"{b}.attn.out_dropout_mask", a, record, rng)
            record(f"{b}.resid_mid", resid_mid)
            f = self._feed_forward(b, self._layer_norm(f"{b}.ln2", resid_mid, record), record, rng)
            out = resid_mid + self._dropout(f"{b}.ffn.out_dropout_mask", f, record, rng)
            record(f"{b}.resid_post", out)
        record(f"{b}.out", out)
        return out

    def _attention(
        self,
        b: str,
        x: np.ndarray,
        mask: np.ndarray,
        record: Record,
        rng: np.random.Generator | None,
    ) -> np.ndarray:
        """Multi-head self-attention: (B, S, D) -> (B, S, D)."""
        p, H = self.params, self.config.n_heads
        q = split_heads(linear(x, p[f"{b}.attn.W_Q"], p[f"{b}.attn.b_Q"]), H)  # (B, H, S, Dh)
        k = split_heads(linear(x, p[f"{b}.attn.W_K"], p[f"{b}.attn.b_K"]), H)  # (B, H, S, Dh)
        v = split_heads(linear(x, p[f"{b}.attn.W_V"], p[f"{b}.attn.b_V"]), H)  # (B, H, S, Dh)
        record(f"{b}.attn.q", q)
        record(f"{b}.attn.k", k)
        record(f"{b}.attn.v", v)
        scores = attention_scores(q, k)  # (B, H, S, S)
        record(f"{b}.attn.scores", scores)
        record(f"{b}.attn.mask", mask)
        weights = masked_softmax(scores, mask)  # (B, H, S, S)
        record(f"{b}.attn.weights", weights)
        used = self._dropout(f"{b}.attn.weights_dropout_mask", weights, record, rng)
        z = used @ v  # (B, H, S, Dh)
        record(f"{b}.attn.z", z)
        concat = merge_heads(z)  # (B, S, D)
        record(f"{b}.attn.concat", concat)
        out = linear(concat, p[f"{b}.attn.W_O"], p[f"{b}.attn.b_O"])  # (B, S, D)
        record(f"{b}.attn.out", out)
        return out

    def _feed_forward(
        self, b: str, h: np.ndarray, record: Record, rng: np.random.Generator | None
    ) -> np.ndarray:
        """Position-wise feed-forward layer: (B, S, D) -> (B, S, F) -> (B, S, D)."""
        p = self.params
        pre = linear(h, p[f"{b}.ffn.W_1"], p[f"{b}.ffn.b_1"])  # (B, S, F)
        record(f"{b}.ffn.pre", pre)
        act = ACTIVATIONS[self.config.activation](pre)  # (B, S, F)
        record(f"{b}.ffn.act", act)
        act = self._dropout(f"{b}.ffn.act_dropout_mask", act, record, rng)
        out = linear(act, p[f"{b}.ffn.W_2"], p[f"{b}.ffn.b_2"])  # (B, S, D)
        record(f"{b}.ffn.out", out)
        return out

    def _layer_norm(self, prefix: str, x: np.ndarray, record: Record) -> np.ndarray:
        """LayerNorm over the last axis, recording its mean, std, normed and out."""
        x_hat, mean, std = normalize(x, self.config.layer_norm_eps)
        out = x_hat * self.params[f"{prefix}.gamma"] + self.params[f"{prefix}.beta"]
        record(f"{prefix}.mean", mean)
        record(f"{prefix}.std", std)
        record(f"{prefix}.normed", x_hat)
        record(f"{prefix}.out", out)
        return out

    def _dropout(
        self, name: str, x: np.ndarray, record: Record, rng: np.random.Generator | None
    ) -> np.ndarray:
        """Dropout in training (recording the mask under ``name``); identity otherwise."""
        if rng is None:
            return x
        out, keep = dropout(x, self.config.dropout, rng)
        record(name, keep)
        return out
