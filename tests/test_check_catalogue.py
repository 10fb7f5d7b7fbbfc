"""The catalogue of mistakes: every check fails every wrong answer, with words that name it.

Each entry is an actual wrong implementation (or, for the design exercises, a wrong answer)
from ``tests/learner_code.py``, the mistake name the check must report and words its message
must contain. Every right implementation passes. A check that let one wrong answer through
would teach the wrong thing, so the catalogue must cover every check of the course.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import learner_code as lc
import numpy as np
import pytest

import minitransformer.testing as testing
from minitransformer import load_toy_model
from minitransformer.functional import layer_norm, softmax
from minitransformer.positional import sinusoidal_positional_encoding
from minitransformer.testing import CheckFailed, mystery_block
from minitransformer.training import held_out

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"


def solutions(module: str) -> ModuleType:
    """``tutorials/solutions/<module>.py``, the reference answers of the notebooks."""
    if str(TUTORIALS) not in sys.path:
        sys.path.insert(0, str(TUTORIALS))
    return importlib.import_module(f"solutions.{module}")


REVERSE_MODEL, _, REVERSE_TASK = load_toy_model("reverse")
REVERSE_IDS = held_out(REVERSE_TASK).token_ids[:1]


def fixed_block(x, params, n_heads, mask=None, eps=1e-5):
    """mystery_block with its bug fixed (the second residual adds h, not x + MHA(x))."""
    _, steps = mystery_block(x, params, n_heads, mask, eps)
    ffn_out = steps["ffn.out"]
    p = params
    return layer_norm(steps["ln1.out"] + ffn_out, p["ln2.gamma"], p["ln2.beta"], eps)


CHECKS: dict[str, Callable[[Any], bool]] = {
    "softmax": testing.check_softmax,
    "layer_norm": testing.check_layer_norm,
    "positional": testing.check_positional_encoding,
    "sdpa": testing.check_scaled_dot_product_attention,
    "mha": testing.check_multi_head_attention,
    "block": testing.check_encoder_block,
    "jacobian": testing.check_softmax_jacobian,
    "mirror": testing.check_mirror_target,
    "pattern": testing.check_pattern_score,
    "offset": testing.check_offset_score,
    "same_token": testing.check_same_token_mask,
    "rollout": testing.check_rollout,
    "head_drop": testing.check_head_drop,
    "completeness": testing.check_completeness_gap,
    "padding": testing.check_attention_on_padding,
    "best_step": testing.check_best_step,
    "spikes": testing.check_gradient_spikes,
    "bug_hunt": testing.check_bug_hunt,
    "design": lambda answer: testing.check_experiment_design(*answer, REVERSE_TASK.config),
    "prediction": partial(
        testing.check_off_by_one_prediction, model=REVERSE_MODEL, token_ids=REVERSE_IDS
    ),
}

BUG_HUNT_MISTAKES = [
    ("out", "downstream_step", "not the first"),
    ("blocks.0.ln2.out", "downstream_step", "every step computed from a wrong value"),
    ("ffn.out", "right_step", "is right"),
    ("resid_mid", "right_step", "further on"),
    ("ffn.hidden", "unknown_step", "its steps are attn.out, resid_mid"),
    (3, "not_a_name", "as a string"),
]

NARROW = {"n_heads": 8}  # d_head = 32 / 8 = 4 in the reverse task's config
UNSCALED = {**NARROW, "scale_scores": False}
SEEDS = [0, 1, 2]
DESIGN_MISTAKES = [
    (({"a": NARROW}, SEEDS), "design_not_two_variants", "compares two"),
    (({"a": NARROW, "b": {**NARROW, "scale": False}}, SEEDS), "design_invalid_variant", "unknown"),
    (({"a": NARROW, "b": NARROW}, SEEDS), "design_no_scaling_change", "scale_scores"),
    (({"a": {}, "b": UNSCALED}, SEEDS), "design_two_changes", "n_heads"),
    (({"a": {}, "b": {"scale_scores": False}}, SEEDS), "design_wrong_width", "n_heads = 8"),
    (({"a": NARROW, "b": UNSCALED}, [0]), "design_few_seeds", "3 seeds"),
]

S = REVERSE_IDS.shape[1]
MIRROR = S - 1 - np.arange(S)
RIGHT_FROM_2 = np.arange(S) >= 2  # queries 2 .. S-1: no wrap-around
PREDICTION_MISTAKES = [
    (MIRROR, "prediction_unchanged", "by *position*"),
    ((MIRROR + 1) % S, "prediction_one_place", "only the queries"),
    ((MIRROR - 1) % S, "prediction_one_place", "Both do"),
    ((MIRROR - 2) % S, "prediction_wrong_way", "the wrong way"),
    (np.where(RIGHT_FROM_2, (MIRROR + 2) % S, MIRROR), "prediction_no_wrap_around", "np.roll"),
    (np.where(RIGHT_FROM_2, (MIRROR + 2) % S, 0), "prediction_no_wrap_around", "queries 0 and 1"),
    (list(range(S)), "mismatch", "expected"),
    ("the mirror, shifted", "not_a_number", "key indices"),
]

CATALOGUE = [
    (check, wrong, mistake, words)
    for check, entries in [
        ("softmax", lc.SOFTMAX_MISTAKES),
        ("layer_norm", lc.LAYER_NORM_MISTAKES),
        ("positional", lc.POSITIONAL_MISTAKES),
        ("sdpa", lc.SDPA_MISTAKES),
        ("mha", lc.MHA_MISTAKES),
        ("block", lc.BLOCK_MISTAKES),
        ("jacobian", lc.JACOBIAN_MISTAKES),
        ("mirror", lc.MIRROR_MISTAKES),
        ("pattern", lc.PATTERN_MISTAKES),
        ("offset", lc.OFFSET_MISTAKES),
        ("same_token", lc.SAME_TOKEN_MISTAKES),
        ("rollout", lc.ROLLOUT_MISTAKES),
        ("head_drop", lc.HEAD_DROP_MISTAKES),
        ("completeness", lc.COMPLETENESS_MISTAKES),
        ("padding", lc.PADDING_MISTAKES),
        ("best_step", lc.BEST_STEP_MISTAKES),
        ("spikes", lc.SPIKES_MISTAKES),
        ("bug_hunt", BUG_HUNT_MISTAKES),
        ("design", DESIGN_MISTAKES),
        ("prediction", PREDICTION_MISTAKES),
    ]
    for wrong, mistake, words in entries
]

RIGHT = [
    ("softmax", softmax),
    ("softmax", lc.my_softmax),
    ("softmax", lambda x, axis=-1: lc.my_softmax(x, axis).astype(np.float32)),
    ("softmax", solutions("ex02").softmax),
    ("layer_norm", layer_norm),
    ("layer_norm", lc.my_layer_norm),
    ("layer_norm", solutions("ex05").layer_norm),
    ("positional", sinusoidal_positional_encoding),  # float32 by default
    ("positional", lc.my_positional_encoding),
    ("positional", solutions("ex01").positional_encoding),
    ("sdpa", testing.attention.scaled_dot_product_attention),  # (out, weights, scores)
    ("sdpa", lc.my_attention),
    ("sdpa", lambda q, k, v, mask=None: lc.my_attention(q, k, v, mask)[0]),  # output only
    ("sdpa", solutions("ex03").masked_attention),
    ("mha", lc.ours_mha),
    ("mha", lc.my_mha),
    ("mha", lambda *args, **kwargs: lc.my_mha(*args, **kwargs)[0]),
    ("mha", solutions("ex04").multi_head_attention),
    ("block", lc.encoder_block_via_encoder),
    ("block", lc.make_block()),
    ("block", solutions("ex05").encoder_block),
    ("block", fixed_block),
    ("jacobian", lc.softmax_jacobian),
    ("jacobian", solutions("ex09").softmax_jacobian),
    ("mirror", lc.mirror_target),
    ("mirror", solutions("ex06").mirror_target),
    ("pattern", lc.pattern_score),
    ("pattern", solutions("ex06").my_pattern_score),
    ("offset", lc.offset_score),
    ("offset", solutions("ex07").offset_score),
    ("same_token", lc.same_token_mask),
    ("same_token", solutions("ex07").same_token_mask),
    ("rollout", lc.rollout_two_layers),
    ("rollout", solutions("ex08").rollout_two_layers),
    ("head_drop", lc.head_drop),
    ("head_drop", solutions("ex08").head_drop),
    ("completeness", lc.completeness_gap),
    ("completeness", solutions("ex08").completeness_gap),
    ("padding", lc.attention_on_padding),
    ("padding", solutions("ex10").attention_on_padding),
    ("best_step", lc.best_step),
    ("best_step", solutions("ex10").best_step),
    ("spikes", lc.spikes_callback()),
    ("spikes", solutions("ex11").GradientSpikes),
    ("bug_hunt", "resid_post"),
    ("bug_hunt", "blocks.0.resid_post"),
    ("design", ({"scaled": NARROW, "unscaled": UNSCALED}, SEEDS)),
    ("prediction", (MIRROR + 2) % S),
]


@pytest.mark.parametrize(
    ("check", "wrong", "mistake", "words"),
    CATALOGUE,
    ids=[f"{check}-{i}-{mistake}" for i, (check, _, mistake, _) in enumerate(CATALOGUE)],
)
def test_each_mistake_fails_with_its_name(check: str, wrong: Any, mistake: str, words: str):
    with pytest.raises(CheckFailed) as failure:
        CHECKS[check](wrong)
    message = str(failure.value)
    assert failure.value.mistake == mistake, message
    assert words in message, message


@pytest.mark.parametrize(
    ("check", "right"), RIGHT, ids=[f"{c}-{i}" for i, (c, _) in enumerate(RIGHT)]
)
def test_each_right_answer_passes(check: str, right: Any, capsys):
    assert CHECKS[check](right) is True
    assert capsys.readouterr().out.startswith("✓")


def test_the_catalogue_covers_every_check():
    """At least 60 mistakes in all, and every check of the course is tried with several."""
    assert len(CATALOGUE) >= 60
    checks = {name for name in testing.__all__ if name.startswith("check_")}
    covered = {getattr(CHECKS[c], "__name__", "") for c, *_ in CATALOGUE}
    covered |= {"check_experiment_design", "check_off_by_one_prediction"}  # wrapped above
    assert checks <= covered, f"checks without a catalogue entry: {checks - covered}"
    per_check = {c: sum(1 for entry in CATALOGUE if entry[0] == c) for c in CHECKS}
    assert min(per_check.values()) >= 4, per_check


def test_the_mystery_block_has_exactly_one_bug():
    """Only resid_post (and what follows it) differs from the right block: the fix passes."""
    assert testing.check_encoder_block(fixed_block)
    with pytest.raises(CheckFailed) as failure:
        testing.check_encoder_block(lambda *args, **kwargs: mystery_block(*args, **kwargs)[0])
    assert failure.value.mistake == "wrong_step", str(failure.value)
    assert "h normalised on its own" not in str(failure.value)
