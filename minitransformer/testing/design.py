"""Checks for the exercises where the learner designs something rather than writes a formula.

* **Find the bug** (notebook 05): :func:`mystery_block` is an encoder block with one bug; the
  learner compares its intermediates with a trace, names the first that differs
  (:func:`check_bug_hunt`), then fixes it (``check_encoder_block``).
* **Choose the experiment** (notebook 09): which variants and seeds answer "does the 1/√d_head
  scaling matter for narrow heads?" (:func:`check_experiment_design`).
* **Predict before looking** (notebook 10): which key each query reads when the positions are
  off by one (:func:`check_off_by_one_prediction`).

Answers here are values, not functions: an answer still ``None`` is an exercise not done yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from minitransformer.attention import merge_heads, scaled_dot_product_attention, split_heads
from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from minitransformer.experiments import CONFIG_FIELDS, variant_config
from minitransformer.functional import layer_norm, linear, relu
from minitransformer.testing.checker import Checker, Mistake, NotWrittenYet, learner_check
from minitransformer.testing.encoder_block import block_steps, random_block_params


def _answer_checker(answer: Any, name: str, verbose: bool) -> Checker:
    """A :class:`Checker` for an answer given as a value; ``None`` means not done yet."""
    if answer is None:
        raise NotWrittenYet(
            f"{name}: not done yet. Replace `None` with your answer, then run this cell again."
        )
    return Checker(lambda: answer, name, verbose)


# ------------------------------------------------------------------------------ the bug hunt


def mystery_block(
    x: np.ndarray,
    params: dict[str, np.ndarray],
    n_heads: int,
    mask: np.ndarray | None = None,
    eps: float = 1e-5,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A post-norm encoder block (ReLU) with one bug. Returns ``(out, steps)``.

    ``steps`` holds every intermediate under its trace name (without ``blocks.{l}.``), in the
    order it is computed, to compare with a trace of the right block.
    """
    p = params
    steps: dict[str, np.ndarray] = {}
    q = split_heads(linear(x, p["attn.W_Q"], p["attn.b_Q"]), n_heads)  # (B, H, S, d_head)
    k = split_heads(linear(x, p["attn.W_K"], p["attn.b_K"]), n_heads)
    v = split_heads(linear(x, p["attn.W_V"], p["attn.b_V"]), n_heads)
    z, _, _ = scaled_dot_product_attention(q, k, v, mask)
    steps["attn.out"] = linear(merge_heads(z), p["attn.W_O"], p["attn.b_O"])  # (B, S, D)
    steps["resid_mid"] = x + steps["attn.out"]
    steps["ln1.out"] = layer_norm(steps["resid_mid"], p["ln1.gamma"], p["ln1.beta"], eps)
    steps["ffn.pre"] = linear(steps["ln1.out"], p["ffn.W_1"], p["ffn.b_1"])  # (B, S, d_ff)
    steps["ffn.act"] = relu(steps["ffn.pre"])
    steps["ffn.out"] = linear(steps["ffn.act"], p["ffn.W_2"], p["ffn.b_2"])  # (B, S, D)
    steps["resid_post"] = steps["resid_mid"] + steps["ffn.out"]
    steps["ln2.out"] = layer_norm(steps["resid_post"], p["ln2.gamma"], p["ln2.beta"], eps)
    steps["out"] = steps["ln2.out"]
    return steps["out"], steps


@learner_check
def check_bug_hunt(first_wrong: Any, *, verbose: bool = False) -> bool:
    """Check the name of the first intermediate of :func:`mystery_block` that is wrong.

    ``first_wrong`` is a trace name, with or without the ``blocks.{l}.`` prefix (e.g.
    ``"ffn.out"``). The check finds the answer itself, by running the mystery block and the
    right one on the same random input.

    Raises
    ------
    CheckFailed
        Naming the likely mistake: a step downstream of the first wrong one (everything
        computed from a wrong value is wrong too), a step that is still right, a name the
        block does not record.
    """
    c = _answer_checker(first_wrong, "first_wrong", verbose)
    rng = np.random.default_rng(5)
    x, p = rng.normal(size=(2, 4, 8)), random_block_params(rng, 8, 16)
    _, mystery = mystery_block(x, p, 2)
    right = block_steps(x, p, 2, None, "post", "relu", 1e-5)
    right["ln2.out"] = right["out"]
    names = list(mystery)
    wrong = [n for n in names if not np.allclose(mystery[n], right[n], atol=1e-10)]
    with c.case("the first step of mystery_block that differs from the trace"):
        if not isinstance(first_wrong, str):
            raise c.fail(
                f"Your answer is a {type(first_wrong).__name__}; give the step's name as a "
                'string, e.g. "ffn.out".',
                "not_a_name",
            )
        answer = first_wrong.split(".", 2)[-1] if first_wrong.startswith("blocks.") else first_wrong
        if answer not in names:
            raise c.fail(
                f"mystery_block records no step named {first_wrong!r}; its steps are "
                f"{', '.join(names)}.",
                "unknown_step",
            )
        if answer in wrong and answer != wrong[0]:
            raise c.fail(
                f"{answer} is wrong, but it is not the first: every step computed from a wrong "
                "value is wrong too. Go through the steps in the order they are computed and "
                "stop at the first that differs.",
                "downstream_step",
            )
        if answer not in wrong:
            raise c.fail(
                f"{answer} is right: the mystery block's {answer} equals the trace's. The bug "
                "is further on.",
                "right_step",
            )
    return c.passed()


# --------------------------------------------------------------------- choose the experiment


@learner_check
def check_experiment_design(
    variants: Any, seeds: Any, base: EncoderConfig, *, verbose: bool = False
) -> bool:
    """Check an experiment that asks: does the 1/√d_head scaling matter for heads of width 4?

    ``variants`` is a dict of two variants (each a dict of :class:`EncoderConfig` fields
    replacing those of ``base``, as :func:`~minitransformer.compare_architectures` takes them)
    and ``seeds`` a list of seeds.

    Raises
    ------
    CheckFailed
        Naming the likely mistake: not exactly two variants, a field that is not in
        EncoderConfig, more than the scaling changed between them, the scaling not changed,
        heads of another width, a single seed.
    """
    c = _answer_checker(variants, "variants", verbose)
    if seeds is None:
        raise NotWrittenYet("seeds: not done yet. Replace `None` with your seeds.")
    with c.case("two variants that differ only in the scaling, with heads of width 4"):
        if not isinstance(variants, Mapping) or len(variants) != 2:
            count = len(variants) if isinstance(variants, Mapping) else "no"
            raise c.fail(
                f"Your variants are {count} variant(s) in a {type(variants).__name__}; the "
                'question compares two: a dict like {"scaled": {...}, "unscaled": {...}}.',
                "design_not_two_variants",
            )
        configs = []
        for name, overrides in variants.items():
            try:
                configs.append(variant_config(base, overrides))
            except (TypeError, ValueError) as err:
                raise c.fail(
                    f"Variant {name!r} is not a valid config: {err}", "design_invalid_variant"
                ) from None
        changed = [f for f in CONFIG_FIELDS if getattr(configs[0], f) != getattr(configs[1], f)]
        if "scale_scores" not in changed:
            raise c.fail(
                "Your two variants do not differ in the scaling: one needs "
                '`"scale_scores": False` (q·k left unscaled), the other the default True.',
                "design_no_scaling_change",
            )
        if changed != ["scale_scores"]:
            others = ", ".join(f for f in changed if f != "scale_scores")
            raise c.fail(
                f"Your variants differ in {others} as well as in the scaling: a difference "
                "between them could then come from either change. Change one thing only; "
                "put what both share (the width of the heads) in both.",
                "design_two_changes",
            )
        if configs[0].d_head != 4:
            raise c.fail(
                f"Your heads have d_head = {configs[0].d_head}; the question is about heads "
                f"of width 4. With d_model {base.d_model}, that is n_heads = "
                f"{base.d_model // 4} (d_head = d_model / n_heads).",
                "design_wrong_width",
            )
    with c.case("seeds enough to tell a difference from noise"):
        if not isinstance(seeds, (list, tuple, range)) or len(set(seeds)) < 3:
            raise c.fail(
                "One or two seeds are one or two samples: training curves of the same "
                "variant differ by several steps from seed to seed. Use at least 3 seeds "
                "(e.g. [0, 1, 2]), and compare the means and the spread.",
                "design_few_seeds",
            )
    return c.passed()


# ------------------------------------------------------------------------ predict, then look


def _off_by_one(positions: np.ndarray) -> np.ndarray:
    return np.roll(positions, 1, axis=0)  # position i gets the row of position i - 1


def _wrap_around_missed(got: np.ndarray, observed: np.ndarray) -> tuple[str, str] | None:
    """Right for every query but the first two: the roll's wrap-around was missed."""
    if got.shape != observed.shape or not np.array_equal(got[2:], observed[2:]):
        return None
    S = len(observed)
    return (
        "Right for queries 2 and on, but not for queries 0 and 1: `np.roll` moves the last row "
        f"of the table to position 0, so query 0 carries the position {S - 1} (and query 1 "
        "position 0). Where are the keys that carry their mirror positions?",
        "prediction_no_wrap_around",
    )


@learner_check
def check_off_by_one_prediction(
    predicted_keys: Any, model: Encoder, token_ids: Any, *, verbose: bool = False
) -> bool:
    """Check a prediction: which key does each query read when the positions are off by one?

    ``predicted_keys[i]`` is the key the learner expects query i of the first sequence of
    ``token_ids`` to read most, in layer 0, head 0, when ``embed.positions`` is rolled by one
    row (``np.roll(P, 1, axis=0)``: position i gets the row of i - 1, position 0 the last row).
    The check runs ``model`` that way and compares with the key each query really reads.

    Raises
    ------
    CheckFailed
        Naming the likely mistake: no change from the mirror, a shift of one place (only the
        queries, or only the keys, moved), a shift the wrong way, the wrap-around of the first
        queries missed.
    """
    c = _answer_checker(predicted_keys, "predicted_keys", verbose)
    _, trace = model.run_with_trace(token_ids, patch={"embed.positions": _off_by_one})
    observed = trace["weights", 0][0, 0].argmax(axis=-1).astype(np.float64)  # (S,)
    S = observed.shape[0]
    i = np.arange(S)
    mirror = S - 1 - i
    with c.case(f"the keys read by the {S} queries with positions off by one"):
        try:
            got = np.asarray(predicted_keys, dtype=np.float64)
        except (TypeError, ValueError):
            raise c.fail(
                f"Your prediction should be {S} key indices, one per query; got "
                f"{predicted_keys!r}.",
                "not_a_number",
            ) from None
        c.compare(
            got,
            observed,
            [
                Mistake(
                    "prediction_unchanged",
                    "You predicted the mirror, as with correct positions. But the head finds "
                    "its key by *position*: every token now carries the position one place "
                    "before its own, the queries and the keys alike.",
                    mirror.astype(np.float64),
                ),
                *[
                    Mistake(
                        "prediction_one_place",
                        "You moved the prediction by one place: that is what happens if only "
                        "the queries (or only the keys) carried wrong positions. Both do: query "
                        "i looks for the mirror of position i - 1, and the key carrying that "
                        "position sits one place further on.",
                        ((mirror + shift) % S).astype(np.float64),
                    )
                    for shift in (1, -1)
                ],
                Mistake(
                    "prediction_wrong_way",
                    "You moved the prediction two places the wrong way: query i thinks it "
                    "sits at i - 1, so it looks for the mirror of i - 1, which is one place "
                    "*further* right, and that position is carried by the key one more place "
                    "to the right.",
                    ((mirror - 2) % S).astype(np.float64),
                ),
            ],
            what="predicted keys",
            diagnose=lambda: _wrap_around_missed(got, observed),
        )
    return c.passed()
