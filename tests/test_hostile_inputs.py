"""Hostile and careless input to the model core (issue 17), tried by class, several inputs each.

1. **Silently wrong**: an input that used to give a wrong answer without a word (an infinite
   LayerNorm eps, a diverging training run, a caller's array frozen or shared, a target out of
   range) now raises, or leaves the caller's data alone.
2. **NaN without an error**: every finite input either gives finite numbers or raises
   :class:`NonFiniteError` naming where the numbers overflowed (parameters checked after the
   cast to the model's dtype; the softmax and every LayerNorm check their row statistics).
3. **Every error names the argument**: NumPy scalars in a config are accepted as the Python
   values they hold; ragged rows, huge integers, wrong types are refused in our words.
"""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest
from conftest import random_params
from hypothesis import given, settings
from hypothesis import strategies as st

from minitransformer import Encoder, EncoderConfig, backward
from minitransformer.functional import layer_norm, masked_softmax
from minitransformer.heads import Classifier, accuracy, cross_entropy, pool
from minitransformer.optim import Adam, AdamW, clip_grad_norm
from minitransformer.params import param_shapes, validate_params
from minitransformer.positional import position_embedding_backward, sinusoidal_positional_encoding
from minitransformer.tasks import Batch, get_task
from minitransformer.trace import Trace
from minitransformer.training import Callback, make_model, train
from minitransformer.validation import NonFiniteError

SMALL = dict(vocab_size=10, d_model=8, n_heads=2, n_layers=2, d_ff=8, max_len=6)


def small(**changes) -> EncoderConfig:
    return EncoderConfig(**(SMALL | changes))


def quietly(fn, *args, **kwargs):
    """Call ``fn`` with NumPy's overflow warnings silenced: the tests look at the result."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*args, **kwargs)


# ======================================================================================
# 1. silently wrong
# ======================================================================================

# ---------------------------------------------------------------------- layer_norm_eps


@pytest.mark.parametrize(
    "eps, dtype, error, match",
    [
        (float("inf"), "float32", ValueError, r"layer_norm_eps must be a finite number, got inf"),
        (float("-inf"), "float64", ValueError, r"layer_norm_eps must be a finite number"),
        (float("nan"), "float32", ValueError, r"layer_norm_eps must be a finite number, got nan"),
        (0.0, "float64", ValueError, r"layer_norm_eps must be a number in \(0, 1\], got 0.0"),
        (-1e-5, "float32", ValueError, r"layer_norm_eps must be a number in \(0, 1\]"),
        (1e30, "float64", ValueError, r"layer_norm_eps must be a number in \(0, 1\], got 1e\+30"),
        (1e-40, "float32", ValueError, r"at least 1.18e-38, the smallest normal float32"),
        (1e-50, "float32", ValueError, r"at least 1.18e-38, the smallest normal float32"),
        (1e-320, "float64", ValueError, r"at least 2.23e-308, the smallest normal float64"),
        ("1e-5", "float32", TypeError, r"layer_norm_eps must be a number, got str '1e-5'"),
        (True, "float32", TypeError, r"layer_norm_eps must be a number, got bool True"),
        (1e-5 + 0j, "float64", TypeError, r"layer_norm_eps must be a number, got complex"),
    ],
)  # fmt: skip
def test_layer_norm_eps_that_would_zero_or_nan_the_model_is_refused(eps, dtype, error, match):
    with pytest.raises(error, match=match):
        small(layer_norm_eps=eps, dtype=dtype)


@settings(max_examples=60, deadline=None, database=None)
@given(
    eps=st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True),
    dtype=st.sampled_from(["float32", "float64"]),
)
def test_any_accepted_eps_keeps_a_constant_token_vector_finite(eps, dtype):
    """A constant vector has variance 0: only eps keeps ``(x - mean) / sqrt(var + eps)`` from
    being 0 / 0. Every eps is either refused naming it, or gives finite hidden states."""
    try:
        config = EncoderConfig(**(SMALL | dict(layer_norm_eps=eps, dtype=dtype)))
    except ValueError as error:
        assert "layer_norm_eps" in str(error)
        return
    params = random_params(config)
    params["embed.W_E"][:] = 0.5  # every token the same constant vector
    model = Encoder(config, params=params)
    hidden = model([[1, 2, 3]])
    assert np.isfinite(hidden).all()
    constant = np.full((2, 8), 3.0, dtype=dtype)
    ones, zeros = np.ones(8, dtype), np.zeros(8, dtype)
    assert np.isfinite(layer_norm(constant, ones, zeros, config.layer_norm_eps)).all()


# ---------------------------------------------------------------------- training


def test_a_learning_rate_that_diverges_stops_training_naming_the_step_and_the_cause():
    """lr=1e6 used to finish with loss 7.6e13 and only NumPy overflow warnings."""
    model, classifier = make_model("reverse")
    with pytest.raises(NonFiniteError) as info:
        quietly(train, model, classifier, get_task("reverse"), steps=30, lr=1e6, progress=False)
    message = str(info.value)
    assert re.search(r"training stopped at step [2-9]\b", message), message
    assert "learning rate too high" in message and "peak lr=1e+06" in message
    assert all(np.isfinite(p).all() for p in model.params.values())  # the last good step's
    assert all(np.isfinite(p).all() for p in classifier.params.values())


class Poison(Callback):
    """Writes NaN into one parameter after step ``at`` (as a bug in user code would)."""

    def __init__(self, at: int, name: str):
        self.at, self.name = at, name

    def on_step(self, step, model, classifier, history):
        if step == self.at:
            model.params[self.name].flat[-1] = np.nan  # an entry every input uses


@pytest.mark.parametrize("name", ["embed.W_E", "blocks.0.attn.W_Q", "blocks.0.ffn.W_2"])
def test_nan_mid_training_is_reported_at_its_step_not_as_a_trace_mismatch(name):
    model, classifier = make_model("reverse")
    task = get_task("reverse")
    with pytest.raises(NonFiniteError, match=r"training stopped at step 4: .*NaN") as info:
        train(model, classifier, task, steps=10, callbacks=[Poison(3, name)], progress=False)
    assert "do not match the trace" not in str(info.value)


def test_a_nan_at_the_first_step_blames_the_start_not_the_learning_rate():
    model, classifier = make_model("reverse")
    model.params["blocks.0.ffn.W_1"][1, 1] = np.inf
    with pytest.raises(NonFiniteError, match=r"step 1: .*before any update.*not the learning"):
        quietly(train, model, classifier, get_task("reverse"), steps=3, progress=False)


def _batch(n: int, targets: int | None = None) -> Batch:
    ids = np.ones((n, 4), dtype=np.int64)
    y = np.zeros((n, 4), dtype=np.int64) if targets is None else np.full((n, 4), targets)
    return Batch(ids, np.ones((n, 4), bool), y)


@pytest.mark.parametrize(
    "arguments, error, match",
    [
        (dict(steps=True), TypeError, r"steps must be an int, got bool True"),
        (dict(steps=0), ValueError, r"steps must be a positive int, got 0"),
        (dict(steps=2.0), TypeError, r"steps must be an int, got float 2.0"),
        (dict(lr=0.0), ValueError, r"lr must be a positive number, got 0.0"),
        (dict(lr=-1e-3), ValueError, r"lr must be a positive number"),
        (dict(lr=float("inf")), ValueError, r"lr must be a finite number, got inf"),
        (dict(lr=float("nan")), ValueError, r"lr must be a finite number, got nan"),
        (dict(lr="3e-3"), TypeError, r"lr must be a number, got str"),
        (dict(min_lr=-1.0), ValueError, r"min_lr must be a number in \[0, 0.003\]"),
        (dict(min_lr=1.0), ValueError, r"min_lr must be a number in \[0, 0.003\], got 1.0"),
        (dict(batch_size=0), ValueError, r"batch_size must be a positive int, got 0"),
        (dict(batch_size=np.bool_(True)), TypeError, r"batch_size must be an int"),
        (dict(eval_every=0), ValueError, r"eval_every must be a positive int, got 0"),
        (dict(warmup_steps=6), ValueError, r"warmup_steps must be an int in \[0, 5\], got 6"),
        (dict(weight_decay=-0.1), ValueError, r"weight_decay must be a number >= 0"),
        (dict(clip_norm=0.0), ValueError, r"clip_norm must be a positive number"),
        (dict(patience=0), ValueError, r"patience must be a positive int"),
        (dict(seed=-1), ValueError, r"seed must be an int >= 0, got -1"),
        (dict(blas_threads=0), ValueError, r"blas_threads must be a positive int"),
        (dict(callbacks=[5]), TypeError, r"callbacks must be Callback objects, got int"),
        (dict(data=[1, 2]), TypeError, r"data must be a Task or a Batch, got list"),
        (dict(data=_batch(0)), ValueError, r"data holds no examples"),
        (dict(data=_batch(3, -100)), ValueError, r"data has no target to score"),
        (dict(val_data=_batch(0)), ValueError, r"val_data holds no examples"),
        (dict(val_data="held out"), TypeError, r"val_data must be a Batch, got str"),
    ],
)  # fmt: skip
def test_bad_training_arguments_are_refused_before_any_step(arguments, error, match):
    model, classifier = make_model("reverse")
    before = {name: p.copy() for name, p in model.params.items()}
    arguments = dict(data=get_task("reverse"), steps=5, progress=False) | arguments
    with pytest.raises(error, match=match):
        train(model, classifier, **arguments)
    assert all(np.array_equal(before[n], p) for n, p in model.params.items())


# ------------------------------------------------------------- the caller's arrays


PATCHES = ["embed.out", "blocks.0.attn.scores", "blocks.0.attn.weights", "blocks.1.ffn.act"]


@pytest.mark.parametrize("name", PATCHES)
@pytest.mark.parametrize("as_function", [False, True])
def test_patch_never_freezes_or_shares_the_callers_array(name, as_function):
    model = Encoder(small(), seed=0)
    _, trace = model.run_with_trace([[1, 2, 3]])
    mine = np.array(trace[name])  # the caller's own writable array
    replacement = (lambda value: mine) if as_function else mine
    _, patched = model.run_with_trace([[1, 2, 3]], patch={name: replacement})
    assert mine.flags.writeable
    assert not np.shares_memory(mine, patched[name])
    mine += 1.0  # editing it later changes nothing recorded
    np.testing.assert_array_equal(patched[name], trace[name])


def test_patching_the_mask_takes_bool_or_0_1_and_copies_it():
    model = Encoder(small(), seed=0)
    mine = np.ones((1, 1, 1, 3), dtype=np.int64)
    mine[..., 2] = 0
    _, trace = model.run_with_trace([[1, 2, 3]], patch={"blocks.0.attn.mask": mine})
    assert mine.flags.writeable and trace["blocks.0.attn.mask"].dtype == bool
    np.testing.assert_array_equal(trace["blocks.0.attn.weights"][..., 2], 0.0)
    for bad in (np.full((1, 1, 1, 3), 0.5), np.full((1, 1, 1, 3), 2)):
        with pytest.raises(ValueError, match=r"patch for 'blocks.0.attn.mask' must be bool"):
            model([[1, 2, 3]], patch={"blocks.0.attn.mask": bad})


def test_a_trace_made_by_hand_leaves_the_callers_arrays_writable():
    mine = {"embed.out": np.zeros((1, 2, 8)), "blocks.0.out": np.ones((1, 2, 8))}
    mine["embed.sum"] = mine["embed.out"]  # one array under two names
    trace = Trace(mine, small())
    assert all(a.flags.writeable for a in mine.values())
    assert trace["embed.sum"] is trace["embed.out"] and trace.nbytes == 2 * 16 * 8
    with pytest.raises(ValueError, match="read-only"):
        trace["embed.out"][0, 0, 0] = 1.0
    assert trace.filter("embed.*")["embed.out"] is trace["embed.out"]


def test_the_returned_hidden_states_are_the_traces_read_only_entry():
    hidden, trace = Encoder(small(), seed=0).run_with_trace([[1, 2, 3]])
    assert hidden is trace["blocks.1.out"]
    with pytest.raises(ValueError, match="read-only"):
        hidden[0, 0, 0] = 1.0


def test_a_model_and_a_head_never_share_the_callers_parameters():
    config = small()
    params = random_params(config)
    originals = {name: p.copy() for name, p in params.items()}
    head_params = {"W": np.ones((8, 3), np.float32), "b": np.zeros(3, np.float32)}
    model = Encoder(config, params=params)
    classifier = Classifier(8, 3, params=head_params)
    batch = Batch(np.array([[1, 2, 3]]), np.ones((1, 3), bool), np.array([[0, 1, 2]]))
    train(model, classifier, batch, steps=3, progress=False)
    for name, p in params.items():
        assert p.flags.writeable
        np.testing.assert_array_equal(p, originals[name], err_msg=name)
    np.testing.assert_array_equal(head_params["W"], 1.0)
    assert not np.array_equal(model.params["blocks.0.attn.W_Q"], params["blocks.0.attn.W_Q"])


# -------------------------------------------------------------- indices out of range


@pytest.mark.parametrize("bad", [-1, 3, -101, 10**30])
@pytest.mark.parametrize("metric", [cross_entropy, accuracy])
def test_class_ids_out_of_range_are_refused_not_wrapped_or_counted(metric, bad):
    logits = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"targets must be .*\[0, 3\)"):
        metric(logits, [0, bad])


@pytest.mark.parametrize("metric", [cross_entropy, accuracy])
def test_no_scored_target_is_an_error_not_a_nan(metric):
    with pytest.raises(ValueError, match="every target is ignore_index=-100"):
        metric(np.zeros((2, 3)), [-100, -100])


def test_an_unknown_pooling_is_refused_not_computed_as_a_mean():
    with pytest.raises(ValueError, match=r"pooling must be one of \['token', 'first', 'mean'\]"):
        pool(np.ones((1, 2, 4)), None, "max")


@pytest.mark.parametrize("pooling", ["first", "mean", "token"])
def test_a_classifier_refuses_an_empty_sequence_instead_of_an_index_error(pooling):
    with pytest.raises(ValueError, match=r"hidden must have shape \(batch, seq, 4\) with batch"):
        Classifier(4, 2, pooling=pooling)(np.ones((2, 0, 4)))


@pytest.mark.parametrize("mask", [[[1, 2]], [[0.5, 1.0]], [[1, 1, 1]]])
def test_a_classifier_mask_must_be_0_1_of_the_right_shape(mask):
    with pytest.raises((TypeError, ValueError), match=r"^mask must"):
        Classifier(4, 2, pooling="mean")(np.ones((1, 2, 4)), mask)


# ======================================================================================
# 2. NaN without an error
# ======================================================================================


@pytest.mark.parametrize("value", [1e39, -1e39, 1e300, np.finfo(np.float64).max])
@pytest.mark.parametrize("name", ["embed.W_E", "blocks.1.attn.b_V", "blocks.0.ln2.gamma"])
def test_parameters_are_checked_after_the_cast_to_the_models_dtype(name, value):
    params = {n: np.ones(s) for n, s in param_shapes(small()).items()}  # float64
    params[name].flat[0] = value
    message = rf"'{re.escape(name)}' contains 1 NaN or infinite .*beyond 3.4e\+38, the largest"
    with pytest.raises(NonFiniteError, match=message):
        quietly(Encoder, small(), params=params)
    model = Encoder(small(dtype="float64"), params=params)  # finite in float64: accepted
    assert model.params[name].flat[0] == value


@pytest.mark.parametrize("value", [np.nan, np.inf, 1e300])
def test_classifier_parameters_are_checked_after_the_cast(value):
    W = np.ones((4, 2))
    W[1, 1] = value
    with pytest.raises(NonFiniteError, match=r"classifier parameter 'W' contains 1 NaN"):
        quietly(Classifier, 4, 2, params={"W": W, "b": np.zeros(2)})


def _scaled(config: EncoderConfig, scales: dict[str, float]) -> dict[str, np.ndarray]:
    params = random_params(config, seed=1)
    for name, scale in scales.items():
        params[name] = (params[name].astype(np.float64) * scale).astype(config.dtype)
    return params


@pytest.mark.parametrize(
    "dtype, scale", [("float32", 1e19), ("float32", 1e30), ("float64", 1e160), ("float64", 1e300)]
)
def test_huge_query_key_weights_raise_naming_the_layer_instead_of_nan(dtype, scale):
    config = small(dtype=dtype)
    params = _scaled(config, {"blocks.1.attn.W_Q": scale, "blocks.1.attn.W_K": scale})
    model = Encoder(config, params=params)
    for forward in (model, model.run_with_trace):
        with pytest.raises(NonFiniteError, match=r"^blocks\.1\.attn\.scores: \d+ row\(s\)"):
            quietly(forward, [[1, 2, 3], [4, 5, 6]])


TENSORS = sorted(param_shapes(small(positional="learned", embed_layer_norm=True)))


@settings(max_examples=40, deadline=None, database=None)
@given(
    dtype=st.sampled_from(["float32", "float64"]),
    norm=st.sampled_from(["post", "pre"]),
    scales=st.dictionaries(st.sampled_from(TENSORS), st.integers(0, 320), min_size=1, max_size=4),
    mask=st.lists(st.booleans(), min_size=4, max_size=4),
)
def test_finite_parameters_give_finite_hidden_states_or_a_named_error(dtype, norm, scales, mask):
    """Whatever finite weights a model holds, its forward pass never returns NaN or inf: it
    returns finite numbers or raises NonFiniteError naming a trace entry."""
    config = small(positional="learned", embed_layer_norm=True, dtype=dtype, norm=norm)
    largest = np.log10(np.finfo(dtype).max)
    exponents = {name: min(k, int(largest) - 1) for name, k in scales.items()}
    params = _scaled(config, {name: 10.0**k for name, k in exponents.items()})
    mask = np.array([mask, [True] * 4])
    mask[0, 0] = True
    model = Encoder(config, params=params)
    try:
        hidden, trace = quietly(model.run_with_trace, [[1, 2, 3, 4], [5, 6, 7, 8]], mask)
    except NonFiniteError as error:
        assert re.match(r"^(embed|blocks\.\d|final_ln|the encoder's output)", str(error))
        return
    assert np.isfinite(hidden).all()
    for name in trace:
        if name.endswith("attn.weights"):
            np.testing.assert_array_equal(trace[name][0][..., ~mask[0]], 0.0)


SCORES = st.floats(allow_nan=False, allow_infinity=False, width=32)  # up to 3.4e38


@settings(max_examples=80, deadline=None, database=None)
@given(
    scores=st.lists(st.lists(SCORES, min_size=4, max_size=4), min_size=3, max_size=3),
    mask=st.lists(st.lists(st.booleans(), min_size=4, max_size=4), min_size=3, max_size=3),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_masked_softmax_of_finite_scores_is_finite_masked_zero_and_sums_to_one(scores, mask, dtype):
    """Even at the ends of float32 (differences of 6e38 overflow to -inf, exp gives 0)."""
    s = np.array(scores, dtype=dtype)
    m = np.array(mask)
    for allowed in (m, None):
        weights = quietly(masked_softmax, s, allowed)
        assert weights.dtype == dtype and np.isfinite(weights).all()
        visible = np.ones_like(m) if allowed is None else m
        np.testing.assert_array_equal(weights[~visible], 0.0)  # exactly 0 where masked
        sums = weights.sum(axis=-1)
        np.testing.assert_allclose(sums[visible.any(axis=-1)], 1.0, rtol=1e-6)
        np.testing.assert_array_equal(sums[~visible.any(axis=-1)], 0.0)  # fully masked rows


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_masked_softmax_raises_on_a_visible_inf_or_nan_and_ignores_a_masked_one(bad, dtype):
    scores = np.zeros((2, 3), dtype=dtype)
    scores[1, 2] = bad
    with pytest.raises(NonFiniteError, match=r"^blocks\.3\.attn\.scores: 1 row\(s\).*row \(1,\)"):
        masked_softmax(scores, None, name="blocks.3.attn.scores")
    mask = np.array([[True, True, True], [True, True, False]])
    weights = masked_softmax(scores, mask)
    np.testing.assert_allclose(weights[1], [0.5, 0.5, 0.0])
    everything_hidden = np.array([[True] * 3, [False] * 3])
    np.testing.assert_array_equal(masked_softmax(scores, everything_hidden)[1], 0.0)
    all_minus_inf = np.full((1, 3), -np.inf, dtype=dtype)  # visible, but nothing to weigh
    with pytest.raises(NonFiniteError, match="1 row"):
        masked_softmax(all_minus_inf, np.ones((1, 3), bool))


@pytest.mark.parametrize("x", [[1e20, -1e20, 0.0], [np.inf, 0.0, 0.0], [np.nan, 1.0, 2.0]])
def test_layer_norm_input_that_overflows_raises_instead_of_becoming_zero(x):
    """A variance beyond float32 used to make x_hat exactly 0: a silent zero vector."""
    rows = np.array([[1.0, 2.0, 3.0], x], dtype=np.float32)
    with pytest.raises(NonFiniteError, match=r"^blocks\.0\.ln1: .*1 token vector\(s\).*\(1,\)"):
        quietly(layer_norm, rows, np.ones(3), np.zeros(3), 1e-5, name="blocks.0.ln1")


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m: m([[1, 2]], head_mask=np.full((2, 2), 1e300)), r"^head_mask contains 4 NaN"),
        (lambda m: m([[1, 2]], patch={"embed.out": np.full((1, 2, 8), np.nan)}),
         r"^patch for 'embed.out' contains 16 NaN"),
        (lambda m: m([[1, 2]], patch={"blocks.0.attn.z": lambda z: z * np.inf}),
         r"^patch for 'blocks.0.attn.z' contains"),
        (lambda m: backward(m, m.run_with_trace([[1, 2]])[1], np.full((1, 2, 8), np.nan)),
         r"^grad_hidden contains 16 NaN"),
    ],
    ids=["head_mask-overflows-float32", "patch-nan", "patch-function-inf", "grad_hidden-nan"],
)  # fmt: skip
def test_inf_or_nan_given_to_the_model_is_refused_by_name(call, match):
    with pytest.raises(NonFiniteError, match=match):
        quietly(call, Encoder(small(), seed=0))


@pytest.mark.parametrize("optimizer", [Adam, AdamW])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_an_optimiser_refuses_a_nonfinite_gradient_and_changes_nothing(optimizer, bad):
    params = {"W": np.ones((2, 2)), "b": np.zeros(2)}
    opt = optimizer(params, lr=0.1, weight_decay=0.1)
    grads = {"W": np.ones((2, 2)), "b": np.array([0.0, bad])}
    with pytest.raises(NonFiniteError, match=r"the gradient of 'b' contains 1 NaN"):
        opt.step(grads)
    np.testing.assert_array_equal(params["W"], 1.0)
    assert opt.t == 0
    with pytest.raises(NonFiniteError, match=r"the gradient of 'b' contains 1 NaN"):
        clip_grad_norm(grads, 1.0)


def test_logits_with_inf_or_nan_are_refused_by_the_loss():
    logits = np.zeros((2, 3))
    logits[0, 1] = np.inf
    with pytest.raises(NonFiniteError, match=r"^logits contains 1 NaN"):
        cross_entropy(logits, [0, 1])


# ======================================================================================
# 3. every error names the argument
# ======================================================================================


@pytest.mark.parametrize(
    "numpy_fields",
    [
        dict(d_model=np.int64(8), n_heads=np.int32(2), vocab_size=np.uint8(10)),
        dict(layer_norm_eps=np.float32(1e-5), dropout=np.float64(0.1)),
        dict(dtype=np.dtype("float64")),
        dict(dtype=np.float64),
        dict(causal=np.bool_(True), scale_scores=np.bool_(False)),
        dict(type_vocab_size=np.int64(2), activation=np.str_("gelu")),
    ],
)
def test_numpy_scalars_in_a_config_become_python_values(numpy_fields):
    config = small(**numpy_fields)
    fields = config.to_dict()
    assert json.loads(json.dumps(fields)) == fields  # JSON-safe, as a checkpoint saves it
    for name, value in fields.items():
        assert type(value) in (int, float, bool, str), (name, type(value))
    assert EncoderConfig.from_dict(fields) == config
    Encoder(config, seed=0)([[1, 2, 3]])


@pytest.mark.parametrize(
    "fields, error, match",
    [
        (None, TypeError, r"from_dict needs a dict of fields, got NoneType"),
        ([("d_model", 8)], TypeError, r"from_dict needs a dict of fields, got list"),
        ({"hidden_act": "gelu"}, ValueError, r"\['hidden_act'\] \(a Hugging Face config.json\? "),
        ({1: 2, "x": 3}, ValueError, r"unknown EncoderConfig field\(s\) \[1, 'x'\]"),
        ({"activation": ["gelu"]}, ValueError, r"activation must be one of .*got list"),
        ({"activation": np.array("relu")}, ValueError, r"activation must be one of .*ndarray"),
        ({"dtype": np.dtype("float16")}, ValueError, r"dtype must be one of .*got 'float16'"),
        ({"dtype": np.int64}, ValueError, r"dtype must be one of .*got 'int64'"),
        ({"d_model": np.float64(8.0)}, TypeError, r"d_model must be an int, got float64 "),
        ({"causal": np.int64(1)}, TypeError, r"causal must be a bool"),
    ],
)  # fmt: skip
def test_config_errors_name_the_field(fields, error, match):
    with pytest.raises(error, match=match):
        EncoderConfig.from_dict(fields)


@pytest.mark.parametrize(
    "ids, match",
    [
        ([[1, 2, 3], [4, 5]], r"token_ids must be rectangular .*row 1 has 2 ids, row 0 has 3 ids"),
        ([[1, 2], [3, 4], [5]], r"row 2 has 1 id, row 0 has 2 ids"),
        ([1, [2, 3]], r"row 1 has 2 ids, row 0 has a single value"),
        ([[[1], [2, 3]]], r"row \(0, 1\) has 2 ids, row \(0, 0\) has 1 id"),
        ([[1, 2, 10**30]], r"token_ids must be in \[0, 10\) \(vocab_size\), got "
         r"1000000000000000000000000000000 at index \(0, 2\)"),
        ([[-(10**30), 1]], r"token_ids must be in \[0, 10\).*got -1000000000000000000000000000000"),
        ([[1, 10**5000]], r"got an integer of about 5001 digits at index \(0, 1\)"),
        ([[1, None]], r"token_ids must hold numbers, got NoneType None at index \(0, 1\)"),
        ("the cat", r"token_ids must be integers, got text .*tokenize it first"),
    ],
)  # fmt: skip
def test_token_ids_errors_speak_of_token_ids_not_numpy(ids, match):
    model = Encoder(small(), seed=0)
    for forward in (model, model.run_with_trace):
        with pytest.raises((TypeError, ValueError), match=match) as info:
            forward(ids)
        assert "inhomogeneous" not in str(info.value) and "dtype object" not in str(info.value)


def test_a_hostile_nesting_is_refused_without_recursing_without_end():
    deep: list = [1]
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(ValueError, match="token_ids must be rectangular .*deeper than 64 levels"):
        Encoder(small(), seed=0)([deep, [1]])


@settings(max_examples=50, deadline=None, database=None)
@given(st.lists(st.integers(1, 6), min_size=2, max_size=5).filter(lambda n: len(set(n)) > 1))
def test_any_ragged_batch_names_its_first_odd_row(lengths):
    ids = [[1] * n for n in lengths]
    first = next(i for i, n in enumerate(lengths) if n != lengths[0])
    model = Encoder(small(), seed=0)
    with pytest.raises(ValueError, match=rf"rectangular .*: row {first} has {lengths[first]} "):
        model(ids)
    square = [[1] * 3 for _ in lengths]
    masks = [[1] * n for n in lengths]
    with pytest.raises(ValueError, match=rf"^mask must be rectangular .*: row {first} has "):
        model(square, masks)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(mask=[[1, 1, 10**30]]), ValueError, r"mask must be 0 or 1, got 1000"),
        (dict(keep=5), TypeError, r"keep must be a name, a glob pattern or a list .*got int"),
        (dict(keep=[5]), TypeError, r"keep must hold names or glob patterns \(str\), got int 5"),
        (dict(keep=[]), ValueError, r"keep must hold at least one name"),
        (dict(rng=5, training=True), TypeError, r"rng must be a numpy.random.Generator .*got int"),
        (dict(rng=np.random.RandomState(0)), TypeError, r"rng must be a numpy.random.Generator"),
        (dict(training="yes"), TypeError, r"training must be a bool, got 'yes'"),
        (dict(head_mask=[[1, 1], [1]]), ValueError, r"head_mask must be rectangular .*row 1 has 1"),
        (dict(patch={3: np.zeros(3)}), TypeError, r"patch keys must be trace names \(str\)"),
    ],
)  # fmt: skip
def test_run_with_trace_arguments_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        Encoder(small(), seed=0).run_with_trace([[1, 2, 3]], **kwargs)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: Encoder(small(), seed=-1), ValueError, r"seed must be an int >= 0, got -1"),
        (lambda: Encoder(small(), seed=1.5), TypeError, r"seed must be an int, got float"),
        (lambda: Encoder(small(), params=[1, 2]), TypeError, r"params must be a dict"),
        (lambda: Classifier(8, 3, dtype="int64"), ValueError, r"dtype must be one of"),
        (lambda: Classifier(8, 3, seed="x"), TypeError, r"seed must be an int, got str"),
        (lambda: get_task(["reverse"]), ValueError, r"unknown task \['reverse'\]"),
        (lambda: get_task("reverse").generate(True), TypeError, r"n must be an int, got bool"),
        (lambda: get_task("reverse").generate(2, seed="x"), TypeError, r"seed must be an int"),
        (lambda: Adam({"W": np.ones(2)}, eps=float("inf")), ValueError, r"eps must be a finite"),
        (lambda: Adam({"W": [1.0]}), TypeError, r"params\['W'\] must be a floating-point"),
        (lambda: validate_params(small(), {"embed.W_E": [[1.0], [1.0, 2.0]]}), ValueError,
         r"missing parameter"),
    ],
)  # fmt: skip
def test_other_arguments_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_the_loop_reference_refuses_ids_the_encoder_refuses():
    """A negative id used to wrap around to the last row of W_E in the reference encoder."""
    from minitransformer.reference import reference_forward

    config = small(dtype="float64")
    params = random_params(config)
    with pytest.raises(ValueError, match=r"token_ids must be in \[0, 10\).*got -1"):
        reference_forward(config, params, [[1, -1]])
    with pytest.raises(ValueError, match=r"mask must contain only 0 and 1"):
        reference_forward(config, params, [[1, 2]], mask=[[1, 2]])


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: sinusoidal_positional_encoding(4.5, 8), TypeError, r"max_len must be an int"),
        (lambda: sinusoidal_positional_encoding(4, 0), ValueError, r"d_model must be a positive"),
        (lambda: position_embedding_backward(np.ones((1, 5, 2)), 4), ValueError,
         r"grad_out has 5 positions, more than max_len=4"),
    ],
)  # fmt: skip
def test_positional_arguments_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call()
