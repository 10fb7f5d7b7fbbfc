"""``check_multi_head_attention``: projections, the head split and merge, and the per-head scale.

Also home of :func:`multi_head`, multi-head attention with a switch for each classic mistake,
which the encoder-block check reuses.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from minitransformer.attention import merge_heads, scaled_dot_product_attention, split_heads
from minitransformer.functional import linear
from minitransformer.testing.attention import (
    MASK_ERROR_HINT,
    MASK_NAN_HINT,
    attend,
    compare_attention,
    mask_mistakes,
    scale_mistakes,
)
from minitransformer.testing.checker import (
    MISTAKE_TOLERANCE_FLOAT32,
    MISTAKE_TOLERANCE_FLOAT64,
    Checker,
    learner_check,
)
from minitransformer.testing.recording import (
    MATMUL_OPS,
    Recording,
    Step,
    first_wrong_step,
    unused_parameters,
)

PARAM_NAMES = ("W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V", "b_O")


def multi_head(
    x: np.ndarray,
    p: dict[str, np.ndarray],
    n_heads: int,
    mask: np.ndarray | None = None,
    *,
    split: str = "contiguous",
    merge: str = "contiguous",
    transposed_weights: bool = False,
    output_projection: bool = True,
    biases: bool = True,
    **attend_settings: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """Multi-head self-attention with switches that reproduce classic mistakes.

    With the defaults this is the right answer. ``p`` holds ``W_Q ... b_O`` (see
    :data:`PARAM_NAMES`). ``split`` is ``"contiguous"`` (right: head h owns columns
    ``h*d_head:(h+1)*d_head``), ``"strided"`` (reshape to (B, S, d_head, H)),
    ``"no_transpose"`` (reshape straight to (B, H, S, d_head)) or ``"not_moved"`` (attention
    over (B, S, H, d_head), i.e. across heads); the merge undoes the split, except that
    ``merge="no_transpose"`` reshapes (B, H, S, d_head) straight to (B, S, D). Further keyword
    arguments go to :func:`~minitransformer.testing.attention.attend`.

    Returns
    -------
    out : ndarray of shape (B, S, D)
    weights : ndarray of shape (B, H, S, S) (another shape for ``split="not_moved"``)
    """
    B, S, D = x.shape
    H, Dh = n_heads, D // n_heads

    def project(name: str) -> np.ndarray:  # (B, S, D) -> (B, S, D)
        W = p[f"W_{name}"].T if transposed_weights else p[f"W_{name}"]
        return x @ W + p[f"b_{name}"] if biases else x @ W

    def to_heads(t: np.ndarray) -> np.ndarray:  # (B, S, D) -> (B, H, S, Dh), or a mistake
        if split == "strided":
            return t.reshape(B, S, Dh, H).transpose(0, 3, 1, 2)
        if split == "no_transpose":
            return t.reshape(B, H, S, Dh)
        if split == "not_moved":
            return t.reshape(B, S, H, Dh)
        return t.reshape(B, S, H, Dh).transpose(0, 2, 1, 3)

    def from_heads(z: np.ndarray) -> np.ndarray:  # the inverse of to_heads: -> (B, S, D)
        if split == "strided":
            return z.transpose(0, 2, 3, 1).reshape(B, S, D)
        if split in ("no_transpose", "not_moved") or merge == "no_transpose":
            return z.reshape(B, S, D)
        return z.transpose(0, 2, 1, 3).reshape(B, S, D)

    q, k, v = to_heads(project("Q")), to_heads(project("K")), to_heads(project("V"))
    z, weights = attend(q, k, v, mask, **attend_settings)
    concat = from_heads(z)  # (B, S, D)
    if not output_projection:
        return concat, weights
    return project_out(concat, p, transposed_weights, biases), weights


def project_out(
    concat: np.ndarray, p: dict[str, np.ndarray], transposed_weights: bool, biases: bool
) -> np.ndarray:
    """The output projection ``concat @ W_O + b_O`` (or a mistaken version of it)."""
    W_O = p["W_O"].T if transposed_weights else p["W_O"]
    return concat @ W_O + p["b_O"] if biases else concat @ W_O


def heads_of(
    x: np.ndarray, p: dict[str, np.ndarray], n_heads: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The right q, k, v, each of shape (B, H, S, Dh), from the toolkit's own functions."""
    q = split_heads(linear(x, p["W_Q"], p["b_Q"]), n_heads)  # (B, H, S, Dh)
    k = split_heads(linear(x, p["W_K"], p["b_K"]), n_heads)
    v = split_heads(linear(x, p["W_V"], p["b_V"]), n_heads)
    return q, k, v


def reference(
    x: np.ndarray, p: dict[str, np.ndarray], n_heads: int, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The right answer from the toolkit's own functions: (out, weights, scores)."""
    z, weights, scores = scaled_dot_product_attention(*heads_of(x, p, n_heads), mask)
    return linear(merge_heads(z), p["W_O"], p["b_O"]), weights, scores


# What each parameter is for, to explain one the learner's function never used.
_ROLES = {
    **{f"W_{n}": "Multi-head attention uses W_Q, W_K, W_V and W_O." for n in "QKVO"},
    **{
        f"b_{n}": "Every projection has a bias: x @ W_Q + b_Q, x @ W_K + b_K, x @ W_V + b_V, "
        "concat @ W_O + b_O."
        for n in "QKVO"
    },
}


def head_mistakes(
    compute: Callable[..., tuple[np.ndarray, np.ndarray]], d_model: int, n_heads: int
) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """``(name, hint, output, weights)`` of the classic multi-head mistakes."""
    d_head = d_model // n_heads
    layout = (
        "Head h must own the contiguous block of columns h*d_head:(h+1)*d_head: reshape "
        "(B, S, D) to (B, S, H, d_head), then `.transpose(0, 2, 1, 3)` to (B, H, S, d_head)."
    )
    return [
        (
            "heads_strided",
            "Your heads are cut in the wrong order: reshaping to (B, S, d_head, H) gives head "
            "h the columns h, h+H, h+2H, ... " + layout,
            *compute(split="strided"),
        ),
        (
            "heads_no_transpose",
            "You reshaped (B, S, D) straight to (B, H, S, d_head): that moves numbers between "
            "tokens. " + layout,
            *compute(split="no_transpose"),
        ),
        (
            "heads_not_moved",
            "Your attention ran across heads instead of across tokens: after reshaping to "
            "(B, S, H, d_head) the heads axis must move in front, `.transpose(0, 2, 1, 3)`, so "
            "that the last two axes are (tokens, d_head).",
            *compute(split="not_moved"),
        ),
        (
            "merge_no_transpose",
            "Your heads are split correctly but merged wrongly: z has shape (B, H, S, d_head); "
            "transpose it back to (B, S, H, d_head) before reshaping to (B, S, D). Reshaping "
            "(B, H, S, d_head) directly mixes tokens.",
            *compute(merge="no_transpose"),
        ),
        (
            "scale_by_sqrt_d_model",
            f"You scaled the scores by 1/sqrt(d_model) = 1/sqrt({d_model}); each head's scores "
            f"are scaled by 1/sqrt(d_head) = 1/sqrt({d_head}), the width of one head "
            "(d_head = d_model / n_heads).",
            *compute(scale=1.0 / math.sqrt(d_model)),
        ),
        *scale_mistakes(compute, d_head),
        (
            "ignores_n_heads",
            "Your output is single-head attention over the full width: split q, k and v into "
            "n_heads heads of width d_model / n_heads, attend within each head, then merge.",
            *compute(split="contiguous", n_heads=1),
        ),
        (
            "weights_transposed",
            "Your projections use transposed weights (`x @ W.T`, the layout of PyTorch's "
            "nn.Linear). Here weights are stored (d_in, d_out) and applied as `x @ W + b`.",
            *compute(transposed_weights=True),
        ),
        (
            "no_output_projection",
            "You return the concatenated heads without the output projection: finish with "
            "`concat @ W_O + b_O`.",
            *compute(output_projection=False),
        ),
        (
            "no_biases",
            "Your output ignores the biases b_Q, b_K, b_V and b_O: each projection is `x @ W + b`.",
            *compute(biases=False),
        ),
        (
            "softmax_over_queries",
            "Your weights sum to 1 over the queries instead of over the keys: apply the "
            "softmax along the last axis (`axis=-1`) of the (B, H, S_q, S_k) scores.",
            *compute(axis=-2),
        ),
    ]


def random_attention_params(
    rng: np.random.Generator, d_model: int, dtype: type = np.float64
) -> dict[str, np.ndarray]:
    """W_Q ... b_O with entries of a size that keeps scores of order 1."""
    p: dict[str, np.ndarray] = {}
    for name in PARAM_NAMES:
        shape = (d_model, d_model) if name.startswith("W") else (d_model,)
        std = 1 / math.sqrt(d_model) if name.startswith("W") else 0.5
        p[name] = rng.normal(0.0, std, size=shape).astype(dtype)
    return p


@learner_check
def check_multi_head_attention(fn: Callable[..., Any], *, verbose: bool = False) -> bool:
    """Check a learner's multi-head self-attention on cases built to expose classic mistakes.

    Expected signature::

        multi_head_attention(x, W_Q, W_K, W_V, W_O, b_Q, b_K, b_V, b_O, n_heads, mask=None)
            -> out  or  (out, weights, ...)

    with x of shape (B, S, D), weights ``W_*`` of shape (D, D) applied as ``x @ W + b``,
    biases ``b_*`` of shape (D,), head h owning columns ``h*d_head:(h+1)*d_head`` of the
    projections (d_head = D / n_heads), scores scaled by ``1/sqrt(d_head)``, and ``mask`` a
    bool array broadcastable to (B, H, S, S), True where a query may attend to a key (e.g.
    ``padding_mask(pad)`` of shape (B, 1, 1, S)). ``out`` has shape (B, S, D); if you return a
    tuple, an array second entry of shape (B, H, S, S) is checked as the weights. The
    arguments are passed by position, ``mask`` by keyword and only in the masked case.

    Parameters
    ----------
    fn : callable
        The learner's function.
    verbose : bool
        Print a line for every case that passes.

    Returns
    -------
    True when every case passes; False, with one printed line, when ``fn`` is still the stub.

    Raises
    ------
    CheckFailed
        Naming the likely mistake: heads split in the wrong order (reshape to (B, S, d_head,
        H)), reshaped without a transpose, attention across heads, merged without a
        transpose, scaled by sqrt(d_model) or not at all, ``n_heads`` ignored, transposed
        weights, no output projection, no biases, softmax over the queries, every mask
        mistake of :func:`check_scaled_dot_product_attention`, wrong shape, type or dtype,
        modified inputs; otherwise a weight or bias it never uses (one forgotten bias), or a
        wrong input of the output projection.
    """
    c = Checker(fn, "multi_head_attention", verbose)
    rng = np.random.default_rng(2019)
    shape_hint = (
        "If this is a shape error: x is (batch, seq, d_model); each W is (d_model, d_model), "
        "applied as `x @ W + b`; reshape to (B, S, n_heads, d_head), then transpose to "
        "(B, n_heads, S, d_head)."
    )

    x, p = rng.normal(size=(2, 5, 12)), random_attention_params(rng, 12)
    with c.case("x (2, 5, 12), 3 heads of width 4, no mask"):
        recording = Recording()
        result = c.call({"x": x, **recording.wrap(p), "n_heads": 3}, error_hint=shape_hint)
        _compare(c, result, recording, x, p, 3)

    pad = np.array([[True] * 5, [True, True, True, False, False]])  # 2 padding tokens
    mask = pad[:, None, None, :]  # (B, 1, 1, S), as padding_mask(pad) gives
    with c.case("padding mask (2, 1, 1, 5): the last 2 tokens of sequence 1 are padding"):
        recording = Recording()
        args = {"x": x, **recording.wrap(p), "n_heads": 3}
        result = c.call(args, {"mask": mask}, error_hint=MASK_ERROR_HINT)
        _compare(c, result, recording, x, p, 3, mask)

    x32 = rng.normal(size=(1, 4, 12)).astype(np.float32)
    p32 = random_attention_params(rng, 12, np.float32)
    with c.case("float32 inputs: x (1, 4, 12), 4 heads of width 3", float32=True):
        recording = Recording()
        result = c.call({"x": x32, **recording.wrap(p32), "n_heads": 4}, error_hint=shape_hint)
        p64 = {name: a.astype(np.float64) for name, a in p32.items()}
        _compare(c, result, recording, x32.astype(np.float64), p64, 4)

    return c.passed()


def _compare(
    c: Checker,
    result: Any,
    recording: Recording,
    x: np.ndarray,
    p: dict[str, np.ndarray],
    n_heads: int,
    mask: np.ndarray | None = None,
) -> None:
    def compute(**settings: Any) -> tuple[np.ndarray, np.ndarray]:
        heads = settings.pop("n_heads", n_heads)
        return multi_head(x, p, heads, mask, **settings)

    out, weights, scores = reference(x, p, n_heads, mask)
    # The masked case comes after the unmasked one, which has caught the head mistakes.
    if mask is None:
        mistakes = head_mistakes(compute, x.shape[-1], n_heads)
    else:
        mistakes = [(name, hint, *result) for name, hint, result in mask_mistakes(compute)]
    B, S, D = x.shape
    hints: dict[tuple[int, ...], str] = {
        (B, n_heads, S, D // n_heads): "That is the heads' layout (B, H, S, d_head): merge "
        "the heads back to (B, S, D) and apply the output projection W_O.",
    }
    concat = merge_heads(scaled_dot_product_attention(*heads_of(x, p, n_heads), mask)[0])
    steps = [
        Step(
            "the input of the output projection (what multiplies W_O)",
            "W_O",
            MATMUL_OPS,
            [concat],
            "the heads' outputs z, merged back to (B, S, D)",
        )
    ]

    def diagnose() -> tuple[str, str] | None:
        tol = MISTAKE_TOLERANCE_FLOAT32 if c.case_float32 else MISTAKE_TOLERANCE_FLOAT64
        unused = unused_parameters(recording, PARAM_NAMES, _ROLES, c.name)
        return unused or first_wrong_step(recording, steps, tol)

    compare_attention(
        c,
        result,
        (out, weights),
        mistakes,
        scores,
        hints,
        nonfinite_hint=MASK_NAN_HINT,
        diagnose=diagnose,
    )
