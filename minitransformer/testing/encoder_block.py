"""``check_encoder_block``: residuals, where the norms go, the feed-forward layer, the mask."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from minitransformer.functional import ACTIVATIONS, layer_norm, linear
from minitransformer.testing.attention import MASK_ERROR_HINT, mask_mistakes
from minitransformer.testing.checker import Checker, Mistake
from minitransformer.testing.multi_head import (
    PARAM_NAMES,
    multi_head,
    random_attention_params,
    reference,
)

BLOCK_PARAM_NAMES = (
    *(f"attn.{name}" for name in PARAM_NAMES),
    "ln1.gamma",
    "ln1.beta",
    "ffn.W_1",
    "ffn.b_1",
    "ffn.W_2",
    "ffn.b_2",
    "ln2.gamma",
    "ln2.beta",
)


def _attention_params(p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: p[f"attn.{name}"] for name in PARAM_NAMES}


def reference_block(
    x: np.ndarray,
    p: dict[str, np.ndarray],
    n_heads: int,
    mask: np.ndarray | None,
    norm: str,
    activation: str,
    eps: float,
) -> np.ndarray:
    """The right answer from the toolkit's own functions: one block, (B, S, D) -> (B, S, D)."""

    def ln(name: str, t: np.ndarray) -> np.ndarray:
        return layer_norm(t, p[f"{name}.gamma"], p[f"{name}.beta"], eps)

    def ffn(t: np.ndarray) -> np.ndarray:
        pre = linear(t, p["ffn.W_1"], p["ffn.b_1"])  # (B, S, F)
        return linear(ACTIVATIONS[activation](pre), p["ffn.W_2"], p["ffn.b_2"])  # (B, S, D)

    def mha(t: np.ndarray) -> np.ndarray:
        return reference(t, _attention_params(p), n_heads, mask)[0]

    if norm == "post":
        h = ln("ln1", x + mha(x))
        return ln("ln2", h + ffn(h))
    h = x + mha(ln("ln1", x))
    return h + ffn(ln("ln2", h))


def block_variant(
    x: np.ndarray,
    p: dict[str, np.ndarray],
    n_heads: int,
    mask: np.ndarray | None,
    norm: str,
    activation: str,
    eps: float,
    *,
    residual: str = "both",
    norm_sublayer: bool = False,
    same_norm: bool = False,
    **attention_settings: Any,
) -> np.ndarray:
    """One block with switches that reproduce classic mistakes.

    ``residual`` is ``"both"`` (right), ``"no_attention"``, ``"no_ffn"`` or
    ``"ffn_from_input"`` (the second residual adds the block's input x instead of h);
    ``norm_sublayer`` (post-norm only) computes ``x + LN(sublayer(x))``; ``same_norm`` uses
    ln1's parameters for both norms; ``activation`` may be ``"none"``; further keyword
    arguments go to :func:`~minitransformer.testing.multi_head.multi_head`.
    """
    ln2 = "ln1" if same_norm else "ln2"

    def ln(name: str, t: np.ndarray) -> np.ndarray:
        return layer_norm(t, p[f"{name}.gamma"], p[f"{name}.beta"], eps)

    def ffn(t: np.ndarray) -> np.ndarray:
        pre = t @ p["ffn.W_1"] + p["ffn.b_1"]
        act = pre if activation == "none" else ACTIVATIONS[activation](pre)
        return act @ p["ffn.W_2"] + p["ffn.b_2"]

    def mha(t: np.ndarray) -> np.ndarray:
        return multi_head(t, _attention_params(p), n_heads, mask, **attention_settings)[0]

    def add(skip: np.ndarray, sub: np.ndarray, which: str) -> np.ndarray:
        return sub if residual == f"no_{which}" else skip + sub

    if norm == "post":
        a = mha(x)
        h = x + ln("ln1", a) if norm_sublayer else ln("ln1", add(x, a, "attention"))
        f = ffn(h)
        skip = x if residual == "ffn_from_input" else h
        return skip + ln(ln2, f) if norm_sublayer else ln(ln2, add(skip, f, "ffn"))
    h = add(x, mha(ln("ln1", x)), "attention")
    skip = x if residual == "ffn_from_input" else h
    return add(skip, ffn(ln(ln2, h)), "ffn")


def _block_mistakes(
    compute: Callable[..., np.ndarray], norm: str, activation: str, d_model: int
) -> list[Mistake]:
    other = "pre" if norm == "post" else "post"
    formula = {
        "post": "post-norm (the paper, BERT): h = LN1(x + MHA(x)), out = LN2(h + FFN(h))",
        "pre": "pre-norm: h = x + MHA(LN1(x)), out = h + FFN(LN2(h))",
    }
    mistakes = [
        Mistake(
            f"block_{other}_norm",
            f"You built a {other}-norm block; this check expects {formula[norm]}. (Pass "
            f'`norm="{other}"` to the check if {other}-norm is what you meant to build.)',
            compute(norm=other),
        ),
        Mistake(
            "block_no_attention_residual",
            "You dropped the residual connection around attention: add the block's input "
            f"back, x + MHA(...). Expected {formula[norm]}.",
            compute(residual="no_attention"),
        ),
        Mistake(
            "block_no_ffn_residual",
            "You dropped the residual connection around the feed-forward layer: add h back, "
            f"h + FFN(...). Expected {formula[norm]}.",
            compute(residual="no_ffn"),
        ),
        Mistake(
            "block_ffn_residual_from_input",
            "Your second residual adds the block's input x; it adds h, the output of the "
            f"attention half of the block. Expected {formula[norm]}.",
            compute(residual="ffn_from_input"),
        ),
        Mistake(
            "block_same_norm",
            "Your second layer norm uses ln1's gamma and beta; it has its own, ln2.gamma and "
            "ln2.beta.",
            compute(same_norm=True),
        ),
        Mistake(
            "block_no_activation",
            f"Your feed-forward layer has no activation: FFN(h) = {activation}(h W_1 + b_1) "
            "W_2 + b_2. Without it, two linear maps collapse into one.",
            compute(activation="none"),
        ),
        *[
            Mistake(
                "block_wrong_activation",
                f"Your feed-forward layer uses {wrong}; this check expects {activation} "
                f'(pass `activation="{wrong}"` to the check if that is what you meant).',
                compute(activation=wrong),
            )
            for wrong in ACTIVATIONS
            if wrong != activation
        ],
        Mistake(
            "scale_by_sqrt_d_model",
            "Your attention scales the scores by 1/sqrt(d_model); each head's scores are "
            "scaled by 1/sqrt(d_head), d_head = d_model / n_heads.",
            compute(scale=1.0 / math.sqrt(d_model)),
        ),
        Mistake(
            "no_scaling",
            "Your attention does not scale the scores: divide q k^T by sqrt(d_head).",
            compute(scale=1.0),
        ),
        Mistake(
            "heads_strided",
            "Your heads are cut in the wrong order (reshape to (B, S, d_head, H)): head h owns "
            "columns h*d_head:(h+1)*d_head; reshape to (B, S, H, d_head), then transpose.",
            compute(split="strided"),
        ),
    ]
    if norm == "post":
        mistakes.append(
            Mistake(
                "block_norm_sublayer_only",
                "You normalised the sublayer's output before adding the residual, "
                "x + LN(MHA(x)); post-norm normalises the sum: LN1(x + MHA(x)), then "
                "LN2(h + FFN(h)).",
                compute(norm_sublayer=True),
            )
        )
    return mistakes


def random_block_params(
    rng: np.random.Generator, d_model: int, d_ff: int, dtype: type = np.float64
) -> dict[str, np.ndarray]:
    """One block's parameters, named as in :data:`BLOCK_PARAM_NAMES`."""
    p = {f"attn.{k}": v for k, v in random_attention_params(rng, d_model, dtype).items()}
    for ln in ("ln1", "ln2"):
        p[f"{ln}.gamma"] = rng.uniform(0.5, 1.5, size=d_model).astype(dtype)
        p[f"{ln}.beta"] = rng.normal(0.0, 0.3, size=d_model).astype(dtype)
    p["ffn.W_1"] = rng.normal(0.0, 1 / math.sqrt(d_model), (d_model, d_ff)).astype(dtype)
    p["ffn.b_1"] = rng.normal(0.0, 0.3, d_ff).astype(dtype)
    p["ffn.W_2"] = rng.normal(0.0, 1 / math.sqrt(d_ff), (d_ff, d_model)).astype(dtype)
    p["ffn.b_2"] = rng.normal(0.0, 0.3, d_model).astype(dtype)
    return p


def check_encoder_block(
    fn: Callable[..., Any],
    *,
    norm: str = "post",
    activation: str = "relu",
    eps: float = 1e-5,
    verbose: bool = False,
) -> bool:
    """Check a learner's transformer encoder block on cases built to expose classic mistakes.

    Expected signature::

        encoder_block(x, params, n_heads, mask=None) -> ndarray of shape (B, S, D)

    with x of shape (B, S, D), ``mask`` a bool array broadcastable to (B, H, S, S), True where
    a query may attend to a key, and ``params`` a dict holding one block's parameters under
    the toolkit's names without the ``blocks.{l}.`` prefix: ``attn.W_Q``, ``attn.W_K``,
    ``attn.W_V``, ``attn.W_O`` (D, D), ``attn.b_Q`` ... ``attn.b_O`` (D,), ``ln1.gamma``,
    ``ln1.beta`` (D,), ``ffn.W_1`` (D, F), ``ffn.b_1`` (F,), ``ffn.W_2`` (F, D), ``ffn.b_2``
    (D,), ``ln2.gamma``, ``ln2.beta`` (D,). Weights are applied as ``x @ W + b``. By default
    the block is post-norm with ReLU and LayerNorm eps 1e-5 (the paper)::

        h = LN1(x + MHA(x)),   out = LN2(h + FFN(h)),   FFN(h) = relu(h W_1 + b_1) W_2 + b_2

    ``mask`` is passed by keyword, only in the masked case.

    Parameters
    ----------
    fn : callable
        The learner's function.
    norm : {"post", "pre"}
        The block expected: post-norm (above) or pre-norm, ``h = x + MHA(LN1(x))``,
        ``out = h + FFN(LN2(h))``.
    activation : {"relu", "gelu", "gelu_tanh"}
        The feed-forward activation expected.
    eps : float
        The LayerNorm epsilon the learner's block uses.
    verbose : bool
        Print a line for every case that passes.

    Returns
    -------
    True when every case passes.

    Raises
    ------
    CheckFailed
        Naming the likely mistake: pre-norm instead of post-norm (or the reverse), a missing
        residual, the second residual taken from x, normalising the sublayer instead of the
        sum, ln1's parameters used twice, no or another activation, the attention scaled by
        sqrt(d_model) or not at all, heads cut in the wrong order, the mask ignored or
        inverted, wrong shape, type or dtype, modified inputs.
    """
    if norm not in ("post", "pre"):
        raise ValueError(f"norm must be 'post' or 'pre', got {norm!r}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    c = Checker(fn, "encoder_block", verbose)
    rng = np.random.default_rng(2020)
    hint = (
        "check_encoder_block passes one block's parameters without the 'blocks.{l}.' prefix, "
        f"under the keys {', '.join(BLOCK_PARAM_NAMES)}."
    )

    def expect(x: np.ndarray, p: dict[str, np.ndarray], H: int, mask: Any = None) -> np.ndarray:
        return reference_block(x, p, H, mask, norm, activation, eps)

    def variant(
        x: np.ndarray, p: dict[str, np.ndarray], H: int, mask: Any = None
    ) -> Callable[..., np.ndarray]:
        def compute(**settings: Any) -> np.ndarray:
            settings = {"norm": norm, "activation": activation, **settings}
            return block_variant(x, p, H, mask, eps=eps, **settings)

        return compute

    x, p = rng.normal(size=(2, 5, 12)), random_block_params(rng, 12, 20)
    with c.case(f"x (2, 5, 12), 3 heads, d_ff 20, {norm}-norm, {activation}, no mask"):
        got = c.array(c.call({"x": x, "params": p, "n_heads": 3}, error_hint=hint))
        c.compare(got, expect(x, p, 3), _block_mistakes(variant(x, p, 3), norm, activation, 12))

    pad = np.array([[True] * 5, [True, True, True, False, False]])
    mask = pad[:, None, None, :]  # (B, 1, 1, S)
    with c.case("padding mask (2, 1, 1, 5): the last 2 tokens of sequence 1 are padding"):
        got = c.array(
            c.call(
                {"x": x, "params": p, "n_heads": 3},
                {"mask": mask},
                error_hint=MASK_ERROR_HINT + " " + hint,
            )
        )
        compute = variant(x, p, 3, mask)
        mistakes = [Mistake(name, why, out) for name, why, out in mask_mistakes(compute)]
        c.compare(got, expect(x, p, 3, mask), mistakes)

    x32 = rng.normal(size=(1, 4, 12)).astype(np.float32)
    p32 = random_block_params(rng, 12, 16, np.float32)
    with c.case("float32 inputs: x (1, 4, 12), 2 heads, d_ff 16", float32=True):
        got = c.array(c.call({"x": x32, "params": p32, "n_heads": 2}, error_hint=hint))
        x64 = x32.astype(np.float64)
        p64 = {name: a.astype(np.float64) for name, a in p32.items()}
        c.compare(
            got, expect(x64, p64, 2), _block_mistakes(variant(x64, p64, 2), norm, activation, 12)
        )

    return c.passed()
