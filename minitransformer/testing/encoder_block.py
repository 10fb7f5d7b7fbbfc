"""``check_encoder_block``: residuals, where the norms go, the feed-forward layer, the mask.

When the output is wrong in a way no catalogued mistake explains, the check looks inside: the
learner's block gets :mod:`~minitransformer.testing.recording` parameters, which show what it
fed into each weight and each norm, and the first of those intermediates that differs from the
right block's (the ones a trace records) is named, with expected and received numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from minitransformer.attention import merge_heads, scaled_dot_product_attention, split_heads
from minitransformer.functional import ACTIVATIONS, layer_norm, linear, standardize
from minitransformer.testing.attention import MASK_ERROR_HINT, mask_mistakes
from minitransformer.testing.checker import (
    MISTAKE_TOLERANCE_FLOAT32,
    MISTAKE_TOLERANCE_FLOAT64,
    Checker,
    Mistake,
    learner_check,
)
from minitransformer.testing.multi_head import (
    PARAM_NAMES,
    multi_head,
    random_attention_params,
)
from minitransformer.testing.recording import (
    MATMUL_OPS,
    Recording,
    Step,
    first_wrong_step,
    unused_parameters,
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


def block_steps(
    x: np.ndarray,
    p: dict[str, np.ndarray],
    n_heads: int,
    mask: np.ndarray | None,
    norm: str,
    activation: str,
    eps: float,
) -> dict[str, np.ndarray]:
    """Every intermediate of the right block, named as in a trace (without ``blocks.{l}.``).

    ``attn.in`` is what the attention projections read (x, or LN1(x) in pre-norm) and
    ``ffn.in`` what the feed-forward layer reads; ``ln1.centred`` is ``x - mean`` before the
    division by the standard deviation.
    """
    steps: dict[str, np.ndarray] = {}

    def ln(name: str, t: np.ndarray) -> np.ndarray:
        steps[f"{name}.normed"], mean, _ = standardize(t, eps)
        steps[f"{name}.centred"] = t - mean
        steps[f"{name}.out"] = steps[f"{name}.normed"] * p[f"{name}.gamma"] + p[f"{name}.beta"]
        return steps[f"{name}.out"]

    def mha(t: np.ndarray) -> np.ndarray:
        steps["attn.in"] = t
        q, k, v = (
            split_heads(linear(t, p[f"attn.W_{n}"], p[f"attn.b_{n}"]), n_heads) for n in "QKV"
        )
        steps["attn.concat"] = merge_heads(scaled_dot_product_attention(q, k, v, mask)[0])
        steps["attn.out"] = linear(steps["attn.concat"], p["attn.W_O"], p["attn.b_O"])
        return steps["attn.out"]

    def ffn(t: np.ndarray) -> np.ndarray:
        steps["ffn.in"] = t
        steps["ffn.pre"] = linear(t, p["ffn.W_1"], p["ffn.b_1"])  # (B, S, F)
        steps["ffn.act"] = ACTIVATIONS[activation](steps["ffn.pre"])
        steps["ffn.out"] = linear(steps["ffn.act"], p["ffn.W_2"], p["ffn.b_2"])  # (B, S, D)
        return steps["ffn.out"]

    if norm == "post":
        steps["resid_mid"] = x + mha(x)
        h = ln("ln1", steps["resid_mid"])
        steps["resid_post"] = h + ffn(h)
        steps["out"] = ln("ln2", steps["resid_post"])
    else:
        steps["resid_mid"] = x + mha(ln("ln1", x))
        steps["out"] = steps["resid_mid"] + ffn(ln("ln2", steps["resid_mid"]))
    return steps


# What each parameter is for, to explain a parameter the learner's block never used.
_ROLES = {
    **{
        f"attn.W_{n}": "Multi-head attention projects x with W_Q, W_K, W_V and W_O." for n in "QKVO"
    },
    **{
        f"attn.b_{n}": "Every projection of multi-head attention has a bias: x @ W_Q + b_Q, "
        "x @ W_K + b_K, x @ W_V + b_V, concat @ W_O + b_O."
        for n in "QKVO"
    },
    "ln1.gamma": "Add & norm 1 ends with gamma * x_hat + beta (ln1.gamma, ln1.beta).",
    "ln1.beta": "Add & norm 1 ends with gamma * x_hat + beta (ln1.gamma, ln1.beta).",
    "ln2.gamma": "The block has a second add & norm, with its own ln2.gamma and ln2.beta.",
    "ln2.beta": "The block has a second add & norm, with its own ln2.gamma and ln2.beta.",
    "ffn.W_1": "The feed-forward layer is act(h W_1 + b_1) W_2 + b_2.",
    "ffn.W_2": "The feed-forward layer is act(h W_1 + b_1) W_2 + b_2.",
    "ffn.b_1": "The feed-forward layer is act(h W_1 + b_1) W_2 + b_2: both biases count.",
    "ffn.b_2": "The feed-forward layer is act(h W_1 + b_1) W_2 + b_2: both biases count.",
}


def _observed_steps(
    x: np.ndarray, s: dict[str, np.ndarray], norm: str, activation: str, eps: float
) -> list[Step]:
    """The intermediates the recorded parameters reveal, in the order the data flows."""

    def ln_step(name: str, formula: str, wrong_inputs: dict[str, np.ndarray]) -> Step:
        """A norm's step: ``gamma * x_hat`` shows x_hat, ``gamma * (z - mean) / std`` shows
        z - mean; either is right, and a mistake is recognised in either form."""
        lookalikes = []
        for sentence, z in wrong_inputs.items():
            x_hat, mean, _ = standardize(z, eps)
            lookalikes += [(sentence, x_hat), (sentence, z - mean)]
        return Step(
            f"add & norm {name[-1]}: the normalised vector (what multiplies {name}.gamma)",
            f"{name}.gamma",
            ("multiply",),
            [s[f"{name}.normed"], s[f"{name}.centred"]],
            formula,
            lookalikes,
        )

    attention = [
        Step(
            "multi-head attention's input (what multiplies attn.W_Q)",
            f"attn.W_{n}",
            MATMUL_OPS,
            [s["attn.in"]],
            "x, the block's input" if norm == "post" else "LN1(x)",
            [("x, the block's input: in pre-norm attention reads LN1(x)", x)],
        )
        for n in "QKV"
    ] + [
        Step(
            "multi-head attention's heads side by side (what multiplies attn.W_O)",
            "attn.W_O",
            MATMUL_OPS,
            [s["attn.concat"]],
            "the heads' outputs z, merged back to (B, S, D)",
        )
    ]
    feed_forward = [
        Step(
            "the feed-forward layer's input (what multiplies ffn.W_1)",
            "ffn.W_1",
            MATMUL_OPS,
            [s["ffn.in"]],
            "h = LN1(x + MHA(x)), the output of add & norm 1" if norm == "post" else "LN2(h)",
            [
                ("x, the block's input", x),
                ("x + MHA(x), before LN1 normalises it", s["resid_mid"]),
                ("h + x: a residual added twice", s["ffn.in"] + x),
                ("MHA(x): the residual is missing", s["attn.out"]),
            ],
        ),
        Step(
            "the feed-forward layer's hidden units (what multiplies ffn.W_2)",
            "ffn.W_2",
            MATMUL_OPS,
            [s["ffn.act"]],
            f"{activation}(h W_1 + b_1)",
            [
                (
                    f"h W_1 + b_1, with no {activation}: apply the activation before W_2, not "
                    "after it",
                    s["ffn.pre"],
                )
            ],
        ),
    ]
    if norm == "post":
        ln1 = ln_step(
            "ln1",
            "(z - mean) / sqrt(var + eps) of z = x + MHA(x)",
            {
                "x normalised on its own: normalise the sum, LN1(x + MHA(x)), not LN1(x) + "
                "MHA(x)": x,
                "MHA(x) normalised on its own: the residual x is missing": s["attn.out"],
                "x + x + MHA(x) normalised: x is added twice": 2 * x + s["attn.out"],
            },
        )
        ln2 = ln_step(
            "ln2",
            "(z - mean) / sqrt(var + eps) of z = h + FFN(h)",
            {
                "FFN(h) normalised on its own: the residual h is missing": s["ffn.out"],
                "x + FFN(h) normalised: the second residual adds h, not x": x + s["ffn.out"],
                "h normalised on its own: normalise the sum, LN2(h + FFN(h))": s["ffn.in"],
            },
        )
        return attention + [ln1] + feed_forward + [ln2]
    ln1 = ln_step("ln1", "(x - mean) / sqrt(var + eps) of the block's input x", {})
    ln2 = ln_step(
        "ln2",
        "(z - mean) / sqrt(var + eps) of h = x + MHA(LN1(x))",
        {"MHA(LN1(x)) normalised on its own: the residual x is missing": s["attn.out"]},
    )
    return [ln1] + attention + [ln2] + feed_forward


def _after_the_last_step(
    got: np.ndarray, x: np.ndarray, s: dict[str, np.ndarray], norm: str, tol: float
) -> tuple[str, str] | None:
    """Every step seen was right but the output is not: what was done after the last one."""
    last = "LN2(h + FFN(h))" if norm == "post" else "h + FFN(LN2(h))"
    lookalikes = {
        f"{last} + h: a residual added after the last step": s["out"] + s["resid_mid"]
        if norm == "pre"
        else s["out"] + s["ffn.in"],
        f"{last} + x: the block's input added once more": s["out"] + x,
    }
    named = [k for k, v in lookalikes.items() if np.allclose(got, v, rtol=tol, atol=tol)]
    if not named:
        return None
    return (
        f"Every intermediate of yours that the check could see is right, but the output is "
        f"{named[0]}. The block's output is {last} itself.",
        "wrong_step",
    )


def diagnose_block(
    recording: Recording,
    got: np.ndarray,
    x: np.ndarray,
    s: dict[str, np.ndarray],
    norm: str,
    activation: str,
    eps: float,
    float32: bool,
    who: str,
) -> tuple[str, str] | None:
    """Name what the learner's block (called ``who``) got wrong: a parameter never used, the
    first wrong step, or what it did after the last step (None if none of these explains it)."""
    tol = MISTAKE_TOLERANCE_FLOAT32 if float32 else MISTAKE_TOLERANCE_FLOAT64
    unused = unused_parameters(recording, BLOCK_PARAM_NAMES, _ROLES, who)
    if unused is not None:
        return unused
    wrong = first_wrong_step(recording, _observed_steps(x, s, norm, activation, eps), tol)
    return wrong or _after_the_last_step(got, x, s, norm, tol)


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


@learner_check
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
                                                       or (out, ...)

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
    True when every case passes; False, with one printed line, when ``fn`` is still the stub.

    Raises
    ------
    CheckFailed
        Naming the likely mistake: pre-norm instead of post-norm (or the reverse), a missing
        residual, the second residual taken from x, normalising the sublayer instead of the
        sum, ln1's parameters used twice, no or another activation, the attention scaled by
        sqrt(d_model) or not at all, heads cut in the wrong order, the mask ignored or
        inverted, wrong shape, type or dtype, modified inputs. Any other wrong block: a
        parameter it never uses (a bias, the second norm), or the first sub-layer whose input
        differs from the right one (the feed-forward layer reading x, the activation after
        W_2, a residual added twice, LN(x) + MHA(x), ...), with expected and received numbers.
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

    def variant(
        x: np.ndarray, p: dict[str, np.ndarray], H: int, mask: Any = None
    ) -> Callable[..., np.ndarray]:
        def compute(**settings: Any) -> np.ndarray:
            settings = {"norm": norm, "activation": activation, **settings}
            return block_variant(x, p, H, mask, eps=eps, **settings)

        return compute

    def run_case(
        x: np.ndarray,
        p: dict[str, np.ndarray],
        H: int,
        mask: np.ndarray | None,
        error_hint: str,
        mistakes: list[Mistake],
        float32: bool = False,
    ) -> None:
        """Run the learner's block with recorded parameters and compare, step by step if wrong."""
        recording = Recording()
        kwargs = {} if mask is None else {"mask": mask}
        args = {"x": x, "params": recording.wrap(p), "n_heads": H}
        result = c.call(args, kwargs, error_hint=error_hint)
        if isinstance(result, tuple) and result:  # (out, intermediates, ...): check out
            result = result[0]
        got = c.array(result)
        x64 = x.astype(np.float64)
        p64 = {name: a.astype(np.float64) for name, a in p.items()}
        steps = block_steps(x64, p64, H, mask, norm, activation, eps)
        c.compare(
            got,
            steps["out"],
            mistakes,
            diagnose=lambda: diagnose_block(
                recording, got, x64, steps, norm, activation, eps, float32, c.name
            ),
        )

    x, p = rng.normal(size=(2, 5, 12)), random_block_params(rng, 12, 20)
    with c.case(f"x (2, 5, 12), 3 heads, d_ff 20, {norm}-norm, {activation}, no mask"):
        run_case(x, p, 3, None, hint, _block_mistakes(variant(x, p, 3), norm, activation, 12))

    pad = np.array([[True] * 5, [True, True, True, False, False]])
    mask = pad[:, None, None, :]  # (B, 1, 1, S)
    with c.case("padding mask (2, 1, 1, 5): the last 2 tokens of sequence 1 are padding"):
        compute = variant(x, p, 3, mask)
        mistakes = [Mistake(name, why, out) for name, why, out in mask_mistakes(compute)]
        run_case(x, p, 3, mask, MASK_ERROR_HINT + " " + hint, mistakes)

    x32 = rng.normal(size=(1, 4, 12)).astype(np.float32)
    p32 = random_block_params(rng, 12, 16, np.float32)
    with c.case("float32 inputs: x (1, 4, 12), 2 heads, d_ff 16", float32=True):
        x64 = x32.astype(np.float64)
        p64 = {name: a.astype(np.float64) for name, a in p32.items()}
        mistakes = _block_mistakes(variant(x64, p64, 2), norm, activation, 12)
        run_case(x32, p32, 2, None, hint, mistakes, float32=True)

    return c.passed()
