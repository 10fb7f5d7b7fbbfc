"""Bad input is refused with the right exception and a message that names the argument and
what was expected and received (NumPy only)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from minitransformer import Encoder, EncoderConfig
from minitransformer.params import param_shapes

CONFIG = EncoderConfig(vocab_size=10, d_model=8, n_heads=2, n_layers=1, d_ff=8, max_len=6)
TYPED = EncoderConfig(
    vocab_size=10, d_model=8, n_heads=2, n_layers=1, d_ff=8, max_len=6, type_vocab_size=2
)


@pytest.fixture(scope="module")
def model() -> Encoder:
    return Encoder(CONFIG)


@pytest.fixture(scope="module")
def typed_model() -> Encoder:
    return Encoder(TYPED)


def both_passes(model, *args, **kwargs):
    """Run the check through ``model(...)`` and ``model.run_with_trace(...)``."""
    for forward in (model, model.run_with_trace):
        yield lambda f=forward: f(*args, **kwargs)


# ------------------------------------------------------------------------ token ids


@pytest.mark.parametrize(
    "ids, error, match",
    [
        ([[1.0, 2.0]], TypeError, r"token_ids must be integers, got .*dtype float64"),
        (np.array([1, 2], dtype=np.float32), TypeError, r"token_ids must be integers.*float32"),
        ([[True, False]], TypeError, r"token_ids must be integers.*dtype bool"),
        ([[1, -1, 2]], ValueError, r"token_ids must be in \[0, 10\) \(vocab_size\), got -1 at "
         r"index \(0, 1\)"),
        ([[1, 2], [3, 10]], ValueError, r"token_ids must be in \[0, 10\).*got 10 at index "
         r"\(1, 1\)"),
        (np.zeros((0,), dtype=int), ValueError, r"token_ids must hold at least one token, got "
         r"shape \(0,\)"),
        ([], ValueError, r"token_ids must hold at least one token, got shape \(0,\)"),
        (np.zeros((1, 0), dtype=int), ValueError, r"token_ids .*at least one token.*\(1, 0\)"),
        (np.zeros((0, 3), dtype=int), ValueError, r"token_ids .*at least one token.*\(0, 3\)"),
        ([list(range(7))], ValueError, r"token_ids has sequence length 7, longer than "
         r"max_len=6"),
        (np.zeros((1, 2, 3), dtype=int), ValueError, r"token_ids must have shape \(seq,\) or "
         r"\(batch, seq\), got 3-D shape \(1, 2, 3\)"),
        (np.int64(3), ValueError, r"token_ids must have shape \(seq,\) or \(batch, seq\), got "
         r"0-D"),
    ],
    ids=[
        "float-list", "float32", "bool", "negative", "too-large", "empty-(0,)", "empty-list",
        "empty-(1,0)", "empty-(0,3)", "longer-than-max_len", "3-D", "scalar",
    ],
)  # fmt: skip
def test_bad_token_ids(model, ids, error, match):
    for run in both_passes(model, ids):
        with pytest.raises(error, match=match):
            run()


def test_sequence_input_gives_a_batch_of_one(model):
    hidden = model([1, 2, 3])
    assert hidden.shape == (1, 3, CONFIG.d_model)
    np.testing.assert_array_equal(hidden, model([[1, 2, 3]]))
    hidden_t, trace = model.run_with_trace(np.array([4, 5]), mask=[1, 0])
    assert hidden_t.shape == (1, 2, CONFIG.d_model)
    assert trace["blocks.0.attn.weights"].shape == (1, CONFIG.n_heads, 2, 2)
    assert model([[4, 5]], [[True, False]]).shape == (1, 2, CONFIG.d_model)


# ----------------------------------------------------------------------------- mask


@pytest.mark.parametrize(
    "mask, error, match",
    [
        ([[1, 1]], ValueError, r"mask must have the token ids' shape \(1, 3\), got \(1, 2\)"),
        ([[1, 1, 1], [1, 1, 1]], ValueError, r"mask must have the token ids' shape \(1, 3\), "
         r"got \(2, 3\)"),
        ([[1.0, 1.0, 0.0]], TypeError, r"mask must be bool or integer 0/1, got dtype float64"),
        ([[1, 2, 0]], ValueError, r"mask must contain only 0 and 1, got values \[0, 1, 2\]"),
        ([[1, -1, 1]], ValueError, r"mask must contain only 0 and 1, got values \[-1, 1\]"),
    ],
    ids=["too-short", "wrong-batch", "float", "value-2", "value-minus-1"],
)  # fmt: skip
def test_bad_mask(model, mask, error, match):
    for run in both_passes(model, [[1, 2, 3]], mask):
        with pytest.raises(error, match=match):
            run()


# ------------------------------------------------------------------- token type ids


def test_token_type_ids_on_a_model_without_them(model):
    for run in both_passes(model, [[1, 2]], token_type_ids=[[0, 0]]):
        with pytest.raises(ValueError, match=r"token_type_ids given, but this model has no "):
            run()


@pytest.mark.parametrize(
    "types, error, match",
    [
        ([[0, 2]], ValueError, r"token_type_ids must be in \[0, 2\) \(type_vocab_size\), got 2 "
         r"at index \(0, 1\)"),
        ([[-1, 0]], ValueError, r"token_type_ids must be in \[0, 2\).*got -1"),
        ([[0.0, 1.0]], TypeError, r"token_type_ids must be integers, got dtype float64"),
        ([[0, 1, 1]], ValueError, r"token_type_ids must have the token ids' shape \(1, 2\), got "
         r"\(1, 3\)"),
    ],
    ids=["too-large", "negative", "float", "wrong-shape"],
)  # fmt: skip
def test_bad_token_type_ids(typed_model, types, error, match):
    for run in both_passes(typed_model, [[1, 2]], token_type_ids=types):
        with pytest.raises(error, match=match):
            run()


# ------------------------------------------------------------------------ parameters


def good_params() -> dict[str, np.ndarray]:
    return {name: np.ones(shape, dtype=np.float32) for name, shape in param_shapes(CONFIG).items()}


def test_params_with_nan_name_the_tensor():
    params = good_params()
    params["blocks.0.ffn.W_2"][3, 1] = np.nan
    with pytest.raises(ValueError, match=r"'blocks\.0\.ffn\.W_2' contains 1 NaN or infinite"):
        Encoder(CONFIG, params=params)
    params = good_params()
    params["embed.W_E"][0, :2] = np.inf
    with pytest.raises(ValueError, match=r"'embed\.W_E' contains 2 NaN or infinite"):
        Encoder(CONFIG, params=params)


def test_params_missing_extra_misshapen_or_integer_name_the_tensor():
    params = good_params()
    del params["blocks.0.attn.b_K"]
    with pytest.raises(ValueError, match=r"missing parameter\(s\) \['blocks\.0\.attn\.b_K'\]"):
        Encoder(CONFIG, params=params)

    params = good_params() | {"blocks.1.attn.W_Q": np.ones((8, 8), dtype=np.float32)}
    with pytest.raises(ValueError, match=r"unexpected parameter\(s\) \['blocks\.1\.attn\.W_Q'\]"):
        Encoder(CONFIG, params=params)

    params = good_params() | {"blocks.0.ffn.W_1": np.ones((8, 9), dtype=np.float32)}
    with pytest.raises(
        ValueError, match=r"'blocks\.0\.ffn\.W_1' has shape \(8, 9\), expected \(8, 8\)"
    ):
        Encoder(CONFIG, params=params)

    params = good_params() | {"blocks.0.ln1.gamma": np.ones(8, dtype=np.int64)}
    with pytest.raises(
        TypeError, match=r"'blocks\.0\.ln1\.gamma' must be floating point, got int64"
    ):
        Encoder(CONFIG, params=params)


def test_good_params_are_accepted_and_converted_to_the_config_dtype():
    params = {name: np.ones(shape) for name, shape in param_shapes(CONFIG).items()}  # float64
    model = Encoder(CONFIG, params=params)
    assert all(p.dtype == np.float32 for p in model.params.values())
    assert list(model.params) == list(param_shapes(CONFIG))


def test_config_must_be_an_encoder_config():
    with pytest.raises(TypeError, match=r"config must be an EncoderConfig, got dict"):
        Encoder(CONFIG.to_dict())  # type: ignore[arg-type]


# --------------------------------------------------------------------------- configs


@pytest.mark.parametrize(
    "fields, error, match",
    [
        (dict(d_model=10, n_heads=4), ValueError, r"d_model must be divisible by n_heads, got "
         r"d_model=10 and n_heads=4"),
        (dict(d_model=0), ValueError, r"d_model must be a positive int, got 0"),
        (dict(n_heads=-2), ValueError, r"n_heads must be a positive int, got -2"),
        (dict(n_layers=0), ValueError, r"n_layers must be a positive int, got 0"),
        (dict(vocab_size=-1), ValueError, r"vocab_size must be a positive int, got -1"),
        (dict(d_ff=0), ValueError, r"d_ff must be a positive int, got 0"),
        (dict(max_len=0), ValueError, r"max_len must be a positive int, got 0"),
        (dict(type_vocab_size=-1), ValueError, r"type_vocab_size must be an int >= 0, got -1"),
        (dict(positional="rotary"), ValueError, r"positional must be one of \['sinusoidal', "
         r"'learned', 'none'\], got 'rotary'"),
        (dict(norm="sandwich"), ValueError, r"norm must be one of \['post', 'pre'\], got "
         r"'sandwich'"),
        (dict(activation="swish"), ValueError, r"activation must be one of \['relu', 'gelu', "
         r"'gelu_tanh'\], got 'swish'"),
        (dict(dtype="float16"), ValueError, r"dtype must be one of \['float32', 'float64'\], "
         r"got 'float16'"),
        (dict(dropout=1.0), ValueError, r"dropout must be a number in \[0, 1\), got 1\.0"),
        (dict(dropout=-0.1), ValueError, r"dropout must be a number in \[0, 1\), got -0\.1"),
        (dict(layer_norm_eps=0), ValueError, r"layer_norm_eps must be a number in \(0, 1\], got 0"),
        (dict(layer_norm_eps=-1e-5), ValueError, r"layer_norm_eps must be a number in \(0, 1\]"),
        (dict(causal=1), TypeError, r"causal must be a bool, got 1"),
        (dict(embed_layer_norm="yes"), TypeError, r"embed_layer_norm must be a bool, got 'yes'"),
        (dict(n_heads=2.0), TypeError, r"n_heads must be an int, got float 2\.0"),
        (dict(d_model=True), TypeError, r"d_model must be an int, got bool True"),
        (dict(type_vocab_size=1.5), TypeError, r"type_vocab_size must be an int"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)  # fmt: skip
def test_invalid_config(fields, error, match):
    with pytest.raises(error, match=match):
        EncoderConfig(**fields)


def test_config_from_dict_rejects_unknown_keys_and_round_trips():
    fields = CONFIG.to_dict() | {"n_head": 2, "hidden": 8}
    with pytest.raises(
        ValueError, match=re.escape("unknown EncoderConfig field(s) ['hidden', 'n_head']")
    ):
        EncoderConfig.from_dict(fields)
    assert EncoderConfig.from_dict(CONFIG.to_dict()) == CONFIG
    with pytest.raises(ValueError, match=r"d_model must be divisible"):
        EncoderConfig.from_dict(CONFIG.to_dict() | {"n_heads": 3})


@pytest.mark.parametrize("type_vocab_size", [0, 2])
def test_a_tokenizer_batch_can_be_passed_whole(type_vocab_size):
    from minitransformer import Encoder, EncoderConfig, WordPieceTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "a", "dog"]
    batch = WordPieceTokenizer(vocab)(["the cat sat", "a dog"], ["a cat", "the"])
    config = EncoderConfig(vocab_size=len(vocab), d_model=8, n_heads=2, n_layers=1,
                           type_vocab_size=type_vocab_size)  # fmt: skip
    model = Encoder(config, seed=0)
    types = batch.token_type_ids if type_vocab_size else None
    expected = model(batch.input_ids, batch.attention_mask, token_type_ids=types)
    np.testing.assert_array_equal(model(batch), expected)
    hidden, trace = model.run_with_trace(batch)
    np.testing.assert_array_equal(hidden, expected)
    assert not trace["blocks.0.attn.mask"][1, 0, 0, -1]  # the shorter pair is padded
    with pytest.raises(ValueError, match="BatchEncoding alone"):
        model(batch, batch.attention_mask)
