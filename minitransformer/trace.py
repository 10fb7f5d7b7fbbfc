"""The trace: every intermediate of one forward pass, by name, in computation order.

``hidden, trace = model.run_with_trace(token_ids)`` returns a :class:`Trace`, a read-only
mapping from names such as ``"blocks.0.attn.weights"`` to arrays. :data:`NAME_TABLE` lists
every name the encoder can record, with its shape and meaning; it is printed in the README
and a test checks it against what the encoder records.

Shapes: B batch, S sequence, D d_model, H heads, Dh = D / H, F d_ff, l = block index from 0.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from minitransformer.config import EncoderConfig
from minitransformer.validation import check_names


@dataclass(frozen=True)
class TraceName:
    """One row of the name table: a name (``{l}`` stands for the block index), its shape,
    when it is recorded, and what it means."""

    name: str
    shape: str
    when: str
    meaning: str


def _layer_norm_rows(prefix: str, when: str, what: str) -> list[TraceName]:
    return [
        TraceName(f"{prefix}.mean", "(B, S, 1)", when, f"mean of each token vector ({what})"),
        TraceName(f"{prefix}.std", "(B, S, 1)", when, "sqrt(var + eps) of each token vector"),
        TraceName(f"{prefix}.normed", "(B, S, D)", when, "(x - mean) / std"),
        TraceName(f"{prefix}.out", "(B, S, D)", when, "gamma * normed + beta"),
    ]


ALWAYS = "always"
TRAINING = "training with dropout > 0"

#: Every name the encoder records, in the order of a post-norm forward pass. With
#: ``norm="pre"`` the ``ln1`` rows come before attention and the ``ln2`` rows before the
#: feed-forward layer, and ``final_ln`` closes the stack.
NAME_TABLE: tuple[TraceName, ...] = (
    TraceName("embed.tokens", "(B, S, D)", ALWAYS, "token embedding rows W_E[token_ids]"),
    TraceName("embed.positions", "(S, D)", "positional != none", "positional encoding rows added"),
    TraceName("embed.token_types", "(B, S, D)", "type_vocab_size > 0", "token-type embedding rows"),
    TraceName("embed.sum", "(B, S, D)", ALWAYS, "sum of the embeddings above"),
    *_layer_norm_rows("embed.ln", "embed_layer_norm", "embedding LayerNorm"),
    TraceName("embed.dropout_mask", "(B, S, D)", TRAINING, "True where dropout kept the entry"),
    TraceName("embed.out", "(B, S, D)", ALWAYS, "input to block 0"),
    TraceName(
        "blocks.{l}.resid_pre",
        "(B, S, D)",
        ALWAYS,
        "block input: embed.out or the last block's out",
    ),
    TraceName("blocks.{l}.attn.q", "(B, H, S, Dh)", ALWAYS, "queries x W_Q + b_Q, per head"),
    TraceName("blocks.{l}.attn.k", "(B, H, S, Dh)", ALWAYS, "keys x W_K + b_K, per head"),
    TraceName("blocks.{l}.attn.v", "(B, H, S, Dh)", ALWAYS, "values x W_V + b_V, per head"),
    TraceName("blocks.{l}.attn.qk", "(B, H, S, S)", ALWAYS, "q k^T: every query . every key"),
    TraceName(
        "blocks.{l}.attn.scores",
        "(B, H, S, S)",
        ALWAYS,
        "qk / sqrt(Dh), unmasked (scale_scores=False: qk itself)",
    ),
    TraceName(
        "blocks.{l}.attn.mask",
        "(B, 1, 1, S) or (B, 1, S, S)",
        ALWAYS,
        "True where a query may attend to a key (second shape when causal)",
    ),
    TraceName(
        "blocks.{l}.attn.weights",
        "(B, H, S, S)",
        ALWAYS,
        "softmax of the masked scores over keys; rows sum to 1",
    ),
    TraceName(
        "blocks.{l}.attn.weights_dropout_mask", "(B, H, S, S)", TRAINING, "dropout on weights"
    ),
    TraceName("blocks.{l}.attn.z", "(B, H, S, Dh)", ALWAYS, "weights @ v: each head's output"),
    TraceName("blocks.{l}.attn.concat", "(B, S, D)", ALWAYS, "the heads' z side by side"),
    TraceName("blocks.{l}.attn.out", "(B, S, D)", ALWAYS, "concat W_O + b_O"),
    TraceName("blocks.{l}.attn.out_dropout_mask", "(B, S, D)", TRAINING, "dropout on attn.out"),
    TraceName("blocks.{l}.resid_mid", "(B, S, D)", ALWAYS, "block input + attention output"),
    *_layer_norm_rows("blocks.{l}.ln1", ALWAYS, "post-norm: of resid_mid; pre-norm: of input"),
    TraceName("blocks.{l}.ffn.pre", "(B, S, F)", ALWAYS, "h W_1 + b_1, before the activation"),
    TraceName("blocks.{l}.ffn.act", "(B, S, F)", ALWAYS, "activation(pre)"),
    TraceName("blocks.{l}.ffn.act_dropout_mask", "(B, S, F)", TRAINING, "dropout on ffn.act"),
    TraceName("blocks.{l}.ffn.out", "(B, S, D)", ALWAYS, "act W_2 + b_2"),
    TraceName("blocks.{l}.ffn.out_dropout_mask", "(B, S, D)", TRAINING, "dropout on ffn.out"),
    TraceName(
        "blocks.{l}.resid_post", "(B, S, D)", ALWAYS, "residual stream + feed-forward output"
    ),
    *_layer_norm_rows("blocks.{l}.ln2", ALWAYS, "post-norm: of resid_post; pre-norm: of resid_mid"),
    TraceName("blocks.{l}.out", "(B, S, D)", ALWAYS, "block output (input to the next block)"),
    *_layer_norm_rows("final_ln", 'norm == "pre"', "final LayerNorm of pre-norm stacks"),
)

_BLOCK = re.compile(r"^blocks\.(\d+)\.")


def template_of(name: str) -> str:
    """The table name of a recorded name: ``"blocks.3.attn.q"`` -> ``"blocks.{l}.attn.q"``."""
    return _BLOCK.sub("blocks.{l}.", name)


_MEANINGS = {row.name: row.meaning for row in NAME_TABLE}


def name_table_markdown() -> str:
    """:data:`NAME_TABLE` as a Markdown table (the one in the README)."""
    lines = ["| name | shape | recorded | meaning |", "|---|---|---|---|"]
    for row in NAME_TABLE:
        lines.append(f"| `{row.name}` | {row.shape} | {row.when} | {row.meaning} |")
    return "\n".join(lines)


class Trace(Mapping[str, np.ndarray]):
    """A read-only mapping of every recorded intermediate, in computation order.

    ``trace["blocks.0.attn.weights"]`` is the (B, H, S, S) attention pattern of block 0;
    ``trace["weights", 0]`` is a shorthand for the same. The arrays themselves are marked
    read-only, so a plot can never quietly change what another plot shows.

    Parameters
    ----------
    arrays : dict of name -> ndarray
        In the order they were computed.
    config : EncoderConfig
        The config of the encoder that produced them.
    token_ids : int ndarray of shape (B, S), optional
        The input of the pass.
    padding_mask : bool ndarray of shape (B, S), optional
        True for real tokens, False for padding (all True when the pass had no mask).
    token_type_ids : int ndarray of shape (B, S), optional
    head_mask : ndarray of shape (n_layers, n_heads), optional
        The head mask the pass used (None: every head kept).
    patched : iterable of str
        The names whose recorded value is a ``patch=`` replacement, not what the model computed.

    The inputs are kept as attributes of the same names, so a figure can tell padding from real
    tokens (:meth:`real_tokens`) and say when an entry was patched, without being told again.
    """

    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        config: EncoderConfig,
        *,
        token_ids: np.ndarray | None = None,
        padding_mask: np.ndarray | None = None,
        token_type_ids: np.ndarray | None = None,
        head_mask: np.ndarray | None = None,
        patched: Iterable[str] = (),
    ):
        # Read-only views of writable arrays, not the arrays themselves: an array the caller
        # still holds stays writable for them. One view per array, so an array recorded under
        # two names is still one array (and nbytes counts it once).
        views: dict[int, np.ndarray] = {}
        for value in arrays.values():
            if id(value) not in views:
                view = value.view() if value.flags.writeable else value
                view.flags.writeable = False
                views[id(value)] = view
        self._arrays = {name: views[id(value)] for name, value in arrays.items()}
        self.config = config
        self.token_ids = _read_only_copy(token_ids)
        self.padding_mask = _read_only_copy(padding_mask)
        self.token_type_ids = _read_only_copy(token_type_ids)
        self.head_mask = _read_only_copy(head_mask)
        self.patched = frozenset(patched)

    # -- mapping ------------------------------------------------------------------------
    def __getitem__(self, key: str | tuple[str, int]) -> np.ndarray:
        if isinstance(key, tuple):
            return self._arrays[self.resolve(*key)]
        if key not in self._arrays:
            raise KeyError(_unknown_name_message(key, self._arrays))
        return self._arrays[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)

    def __repr__(self) -> str:
        return f"<Trace: {len(self)} arrays, {self.nbytes / 1e6:.1f} MB; .summary() lists them>"

    # -- lookups ------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Every recorded name, in computation order."""
        return list(self._arrays)

    def resolve(self, short: str, layer: int) -> str:
        """The full name of a shorthand: ``("weights", 0)`` -> ``"blocks.0.attn.weights"``.

        ``short`` may be a full suffix (``"attn.out"``, ``"ffn.pre"``) or its last part when
        that is unambiguous in the block (``"weights"``, ``"q"``).
        """
        prefix = f"blocks.{layer}."
        exact = prefix + short
        if exact in self._arrays:
            return exact
        candidates = [n for n in self._arrays if n.startswith(prefix) and n.endswith("." + short)]
        if len(candidates) == 1:
            return candidates[0]
        if not any(n.startswith(prefix) for n in self._arrays):
            raise KeyError(f"no block {layer} in this trace (layers: {self.n_layers})")
        if candidates:
            raise KeyError(f"{short!r} is ambiguous in block {layer}: {candidates}")
        raise KeyError(_unknown_name_message(exact, self._arrays))

    @property
    def n_layers(self) -> int:
        """Number of blocks that have entries in this trace."""
        layers = {int(m.group(1)) for n in self._arrays if (m := _BLOCK.match(n))}
        return max(layers) + 1 if layers else 0

    @property
    def nbytes(self) -> int:
        """Memory held by the recorded arrays, counting an array recorded twice once."""
        unique = {id(a): a for a in self._arrays.values()}
        return sum(a.nbytes for a in unique.values())

    def layer(self, layer: int) -> Trace:
        """The entries of one block, as a trace of their own (names unchanged)."""
        self._check_layer(layer)
        prefix = f"blocks.{layer}."
        return self._with({n: a for n, a in self._arrays.items() if n.startswith(prefix)})

    def head(self, layer: int, head: int) -> dict[str, np.ndarray]:
        """One head's attention arrays, with the head axis removed.

        Returns
        -------
        dict with ``q``, ``k``, ``v``, ``z`` of shape (B, S, Dh) and ``qk``, ``scores``,
        ``weights`` of shape (B, S, S), for those the trace recorded.
        """
        self._check_layer(layer)
        if not 0 <= head < self.config.n_heads:
            raise IndexError(f"head must be in [0, {self.config.n_heads}), got {head}")
        out = {}
        for part in ("q", "k", "v", "qk", "scores", "weights", "z"):
            name = f"blocks.{layer}.attn.{part}"
            if name in self._arrays:
                out[part] = self._arrays[name][:, head]
        return out

    def filter(self, keep: str | Iterable[str]) -> Trace:
        """A trace with only the names matching ``keep`` (names or glob patterns)."""
        kept = select_names(self._arrays, keep)
        return self._with({n: self._arrays[n] for n in kept})

    def real_tokens(self, batch: int = 0) -> np.ndarray:
        """Which positions of batch row ``batch`` are real tokens (not padding).

        Returns
        -------
        bool ndarray of shape (S,): the trace's ``padding_mask[batch]``.
        """
        if self.padding_mask is None:
            raise ValueError(
                "this trace does not know its padding mask (it was not made by "
                "model.run_with_trace)"
            )
        return self.padding_mask[batch]

    def _with(self, arrays: dict[str, np.ndarray]) -> Trace:
        """A trace of ``arrays`` with this trace's config and inputs."""
        return Trace(
            arrays,
            self.config,
            token_ids=self.token_ids,
            padding_mask=self.padding_mask,
            token_type_ids=self.token_type_ids,
            head_mask=self.head_mask,
            patched=self.patched & set(arrays),
        )

    def summary(self) -> str:
        """A printable table: name, shape, dtype and meaning of every entry."""
        rows = [
            (n, str(a.shape), str(a.dtype), _MEANINGS.get(template_of(n), ""))
            for n, a in self._arrays.items()
        ]
        widths = [max(len(r[i]) for r in [("name", "shape", "dtype", ""), *rows]) for i in range(3)]
        header = f"{'name':<{widths[0]}}  {'shape':<{widths[1]}}  {'dtype':<{widths[2]}}  meaning"
        lines = [header, "-" * len(header)]
        for name, shape, dtype, meaning in rows:
            lines.append(
                f"{name:<{widths[0]}}  {shape:<{widths[1]}}  {dtype:<{widths[2]}}  {meaning}"
            )
        lines.append(f"{len(rows)} arrays, {self.nbytes / 1e6:.2f} MB")
        return "\n".join(lines)

    def _check_layer(self, layer: int) -> None:
        if not 0 <= layer < self.config.n_layers:
            raise IndexError(f"layer must be in [0, {self.config.n_layers}), got {layer}")


def _read_only_copy(array: np.ndarray | None) -> np.ndarray | None:
    """A read-only copy of an input kept by a trace (the caller's array stays writable)."""
    if array is None:
        return None
    copy = np.array(array)
    copy.flags.writeable = False
    return copy


def select_names(names: Iterable[str], keep: str | Iterable[str]) -> list[str]:
    """The names matching any of ``keep`` (exact names or ``fnmatch`` glob patterns).

    Raises ``ValueError`` for a pattern that matches nothing, so a typo cannot silently
    produce an empty trace.
    """
    names = list(names)
    checked = check_names("keep", keep)
    patterns = [checked] if isinstance(checked, str) else checked
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            raise ValueError(f"keep pattern {pattern!r} matches no name of this trace")
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def expected_names(config: EncoderConfig, training: bool = False) -> list[str]:
    """The names a forward pass with this config records, in computation order.

    Derived from :data:`NAME_TABLE` alone (a test checks it against what the encoder records).
    """
    conditions = {
        ALWAYS: True,
        TRAINING: training and config.dropout > 0,
        "positional != none": config.positional != "none",
        "type_vocab_size > 0": config.type_vocab_size > 0,
        "embed_layer_norm": config.embed_layer_norm,
        'norm == "pre"': config.norm == "pre",
    }
    rows = [row.name for row in NAME_TABLE if conditions[row.when]]
    embed = [n for n in rows if n.startswith("embed.")]
    block = [n for n in rows if n.startswith("blocks.")]
    final = [n for n in rows if n.startswith("final_ln.")]
    if config.norm == "pre":  # each LayerNorm moves in front of the sublayer it feeds
        ln1 = [n for n in block if ".ln1." in n]
        ln2 = [n for n in block if ".ln2." in n]
        rest = [n for n in block if n not in ln1 and n not in ln2]
        attn_start = rest.index("blocks.{l}.attn.q")
        ffn_start = rest.index("blocks.{l}.ffn.pre")
        block = rest[:attn_start] + ln1 + rest[attn_start:ffn_start] + ln2 + rest[ffn_start:]
    per_layer = [n.replace("{l}", str(l)) for l in range(config.n_layers) for n in block]
    return embed + per_layer + final


def _unknown_name_message(name: str, arrays: Mapping[str, np.ndarray]) -> str:
    close = [n for n in arrays if n.split(".")[-1] == name.split(".")[-1]][:5]
    hint = f"; similar names: {close}" if close else ""
    return f"{name!r} is not in this trace ({len(arrays)} names; see trace.names()){hint}"
