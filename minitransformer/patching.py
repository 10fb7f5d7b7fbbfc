"""Activation patching: replace trace entries as the forward pass computes them.

``model.run_with_trace(ids, patch={"blocks.0.attn.weights": uniform})`` continues the pass from
the replacement, as if the model had computed it (Vig et al. 2020; Meng et al. 2022). A
replacement is an array of the entry's shape (e.g. the same entry recorded on another input) or
a function ``f(value) -> replacement`` (e.g. to change only some heads).

The forward pass calls ``x = record(name, x)`` for every entry (see
:data:`~minitransformer.functional.Record`); :func:`patched_value` is what such a recorder does
with a patched name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from minitransformer.config import EncoderConfig
from minitransformer.trace import expected_names, template_of
from minitransformer.validation import as_array, check_finite

#: What ``patch=`` maps a trace name to: an array of the entry's shape, or a function of it.
Patch = Mapping[str, "np.ndarray | Callable[[np.ndarray], np.ndarray]"]

#: Trace entries that ``patch=`` may replace: those the forward pass reads back after recording
#: them (``{l}`` is any block). Not patchable: the LayerNorm ``mean``/``std`` (recorded for the
#: backward pass only) and the dropout masks.
PATCHABLE = (
    "embed.tokens", "embed.positions", "embed.token_types", "embed.sum", "embed.ln.normed",
    "embed.ln.out", "embed.out",
    "blocks.{l}.resid_pre",
    "blocks.{l}.attn.q", "blocks.{l}.attn.k", "blocks.{l}.attn.v", "blocks.{l}.attn.qk",
    "blocks.{l}.attn.scores",
    "blocks.{l}.attn.mask", "blocks.{l}.attn.weights", "blocks.{l}.attn.z",
    "blocks.{l}.attn.concat", "blocks.{l}.attn.out", "blocks.{l}.resid_mid",
    "blocks.{l}.ln1.normed", "blocks.{l}.ln1.out", "blocks.{l}.ffn.pre", "blocks.{l}.ffn.act",
    "blocks.{l}.ffn.out", "blocks.{l}.resid_post", "blocks.{l}.ln2.normed", "blocks.{l}.ln2.out",
    "blocks.{l}.out", "final_ln.normed", "final_ln.out",
)  # fmt: skip


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


def patched_value(patches: Mapping[str, Any], name: str, value: np.ndarray) -> np.ndarray:
    """The value the pass continues with at trace entry ``name``: its replacement in
    ``patches`` (checked by :func:`replacement`), or ``value`` itself when it is not patched."""
    if name not in patches:
        return value
    return replacement(name, value, patches[name])


def replacement(name: str, value: np.ndarray, patch: Any) -> np.ndarray:
    """The replacement of trace entry ``name``: the array ``patch``, or ``patch(value)``.

    Always a new array (the trace freezes what it records, and must not freeze the caller's
    array), of the entry's shape and dtype: bool 0/1 for ``attn.mask``, finite numbers otherwise.
    """
    label = f"patch for {name!r}"
    new = as_array(patch(value) if callable(patch) else patch, label)
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
