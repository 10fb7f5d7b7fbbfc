"""The inputs of a forward pass, checked once: token ids, padding mask and token types.

Every ``interpret`` function that runs a model takes its input the way the model does::

    f(model, token_ids, ..., mask=None, *, token_type_ids=None)
    f(model, batch, ...)          # batch = tokenizer(texts) or tokenizer(texts, pairs)

and turns it into one :class:`ModelInputs` with :func:`model_inputs`. Every pass the function
makes (the clean run, the perturbed copies, the backward pass) goes through that object, so a
sentence pair keeps its segment B as token type 1 in all of them; forgetting the types would
silently compute segment B as type 0.

A tokenizer :class:`~minitransformer.tokenizer.BatchEncoding` brings its ``attention_mask``
and ``token_type_ids``; pass no ``mask`` or ``token_type_ids`` with it (as for the model).

**Sequences without a real token** (mask all 0). The model gives their rows all-zero
attention, never NaN. Functions that explain one sequence (occlusion, gradient x input,
Integrated Gradients, gradient-weighted rollout, and the comparisons built on them) raise
``ValueError`` for such a sequence: there is nothing to explain. Functions that average over
real tokens (:func:`~minitransformer.interpret.interventions.mean_head_outputs`,
:func:`~minitransformer.interpret.stats.head_statistics`,
:func:`~minitransformer.interpret.similarity.head_distances`,
:func:`~minitransformer.interpret.diagnostics.diagnose`) skip such rows and raise only when no
token at all is real. Functions that run a batch and hand its output to your metric (ablation,
patching, permutation, head importance, pruning) run it as the model does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from minitransformer.backprop import Gradients, backward
from minitransformer.encoder import Encoder
from minitransformer.inputs import as_mask, as_token_ids, as_token_type_ids, split_token_batch
from minitransformer.trace import Trace


@dataclass(frozen=True)
class ModelInputs:
    """A checked batch of inputs for one model.

    Attributes
    ----------
    token_ids : int64 ndarray of shape (B, S)
    mask : bool ndarray of shape (B, S)
        True for real tokens (all True when no mask was given).
    token_type_ids : int64 ndarray of shape (B, S), or None
        Segment of each token (all 0 when none were given); None for a model without
        token-type embeddings.
    """

    token_ids: np.ndarray
    mask: np.ndarray
    token_type_ids: np.ndarray | None

    def __len__(self) -> int:
        return self.token_ids.shape[0]

    @property
    def shape(self) -> tuple[int, int]:
        """(B, S)."""
        return (self.token_ids.shape[0], self.token_ids.shape[1])

    def run(self, model: Encoder, **kwargs: Any) -> np.ndarray:
        """``model(ids, mask, token_type_ids=types, **kwargs)``: hidden (B, S, D)."""
        return model(self.token_ids, self.mask, token_type_ids=self.token_type_ids, **kwargs)

    def run_with_trace(self, model: Encoder, **kwargs: Any) -> tuple[np.ndarray, Trace]:
        """``model.run_with_trace`` on these inputs (``kwargs``: keep, head_mask, patch, ...)."""
        return model.run_with_trace(
            self.token_ids, self.mask, token_type_ids=self.token_type_ids, **kwargs
        )

    def backward(
        self, model: Encoder, trace: Trace, grad_hidden: np.ndarray, **kwargs: Any
    ) -> Gradients:
        """:func:`~minitransformer.backprop.backward` of a pass made by :meth:`run_with_trace`."""
        return backward(model, trace, grad_hidden, **kwargs)

    def rows(self, index: Any) -> ModelInputs:
        """Some sequences (``index``: an int, a slice or an index array), kept 2-D."""
        select = np.arange(len(self))[index]
        select = np.atleast_1d(select)
        types = None if self.token_type_ids is None else self.token_type_ids[select]
        return ModelInputs(self.token_ids[select], self.mask[select], types)

    def repeat(self, n: int) -> ModelInputs:
        """Every sequence repeated ``n`` times (``np.repeat`` along the batch): n*B rows, to be
        edited as the perturbed copies of occlusion or the path of Integrated Gradients."""
        types = None if self.token_type_ids is None else np.repeat(self.token_type_ids, n, 0)
        return ModelInputs(
            np.repeat(self.token_ids, n, axis=0), np.repeat(self.mask, n, axis=0), types
        )


def model_inputs(
    model: Encoder,
    token_ids: Any,
    mask: Any = None,
    token_type_ids: Any = None,
    *,
    name: str = "token_ids",
) -> ModelInputs:
    """Check a model's input once: ids, or a ``BatchEncoding``, with its mask and token types.

    Parameters
    ----------
    model : Encoder
        Gives the vocabulary size, the longest input and whether there are token types.
    token_ids : int array of shape (S,) or (B, S), or BatchEncoding
        (S,) becomes (1, S). A ``BatchEncoding`` (the tokenizer's output) brings its
        ``attention_mask`` and ``token_type_ids`` (its types are dropped for a model without
        token-type embeddings, as :class:`~minitransformer.encoder.Encoder` does).
    mask : bool or 0/1 array of the same shape, optional
        1 for real tokens; None: every token is real.
    token_type_ids : int array of the same shape, optional
        Segment ids; None: all 0.
    name : str
        The argument's name in error messages (e.g. ``"baseline_ids"``).

    Returns
    -------
    ModelInputs
    """
    if not isinstance(model, Encoder):
        raise TypeError(f"model must be an Encoder, got {type(model).__name__}")
    token_ids, mask, token_type_ids = split_token_batch(
        token_ids, mask, token_type_ids, model.config, name
    )
    ids = as_token_ids(token_ids, model.config, name=name)
    real = np.ones(ids.shape, dtype=bool) if mask is None else as_mask(mask, ids.shape)
    types = None
    if model.config.type_vocab_size > 0:
        types = as_token_type_ids(token_type_ids, ids.shape, model.config)
    elif token_type_ids is not None:
        as_token_type_ids(token_type_ids, ids.shape, model.config)  # raises: no type embeddings
    return ModelInputs(ids, real, types)


def every_sequence_real(inputs: ModelInputs) -> ModelInputs:
    """``inputs``, or ValueError naming the first sequence whose mask has no real token."""
    empty = np.flatnonzero(~inputs.mask.any(axis=1))
    if empty.size:
        raise ValueError(
            f"sequence {empty[0]} of token_ids has no real token (its mask is all 0): there is "
            f"nothing to explain"
        )
    return inputs


def one_sequence(
    model: Encoder, token_ids: Any, mask: Any = None, token_type_ids: Any = None
) -> ModelInputs:
    """:func:`model_inputs` of exactly one sequence (shape (S,) or (1, S)) with at least one
    real token, else ValueError."""
    inputs = model_inputs(model, token_ids, mask, token_type_ids)
    if len(inputs) != 1:
        raise ValueError(
            f"token_ids must be one sequence, shape (S,) or (1, S), got {inputs.shape}: explain "
            f"one sequence at a time (e.g. token_ids[b], or tokenizer(text) for one text)"
        )
    return every_sequence_real(inputs)
