"""Saving and loading: round trips are exact, and broken files fail loudly, naming the tensor."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import make_encoder

from minitransformer.checkpoint import load_checkpoint, save_checkpoint
from minitransformer.config import EncoderConfig
from minitransformer.encoder import Encoder
from minitransformer.heads import Classifier

CONFIGS = [
    EncoderConfig(vocab_size=11, d_model=8, n_heads=2, n_layers=2, d_ff=16, max_len=12),
    EncoderConfig(
        vocab_size=13, d_model=12, n_heads=3, n_layers=1, d_ff=8, max_len=9,
        positional="learned", norm="pre", activation="gelu", embed_layer_norm=True,
        type_vocab_size=2, dtype="float64",
    ),
]  # fmt: skip


def _save(tmp_path: Path, name: str = "m.npz") -> tuple[Path, Encoder, Classifier]:
    model = make_encoder(CONFIGS[0], seed=1)
    head = Classifier(8, 5, pooling="mean", seed=2)
    path = save_checkpoint(tmp_path / name, model, head, metadata={"task": "reverse"})
    return path, model, head


def _rewrite(path: Path, change) -> None:
    """Rewrite the archive at ``path`` with ``change(arrays)`` applied to its dict of arrays."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    change(arrays)
    with open(path, "wb") as file:
        np.savez(file, **arrays)


@pytest.mark.parametrize("config", CONFIGS, ids=["post-sinusoidal", "pre-learned-bert"])
def test_round_trip_is_exact(tmp_path, config):
    model = make_encoder(config, seed=3)
    path = save_checkpoint(tmp_path / "model.npz", model)
    assert path == tmp_path / "model.npz" and path.is_file()
    loaded = load_checkpoint(path).model
    assert loaded.config == config
    assert list(loaded.params) == list(model.params)
    for name, value in model.params.items():
        assert loaded.params[name].dtype == value.dtype
        np.testing.assert_array_equal(loaded.params[name], value, err_msg=name)
    ids = np.arange(6) % config.vocab_size
    np.testing.assert_array_equal(loaded(ids), model(ids))


def test_classifier_and_metadata_round_trip(tmp_path):
    path, model, head = _save(tmp_path)
    checkpoint = load_checkpoint(path)
    assert checkpoint.metadata == {"task": "reverse"}
    assert checkpoint.classifier is not None
    assert (checkpoint.classifier.n_classes, checkpoint.classifier.pooling) == (5, "mean")
    for name in ("W", "b"):
        np.testing.assert_array_equal(checkpoint.classifier.params[name], head.params[name])
    hidden = model(np.array([[1, 2, 3]]))
    np.testing.assert_array_equal(checkpoint.classifier(hidden), head(hidden))


def test_without_classifier_loads_none(tmp_path):
    path = save_checkpoint(tmp_path / "bare.npz", make_encoder(CONFIGS[0]))
    assert load_checkpoint(path).classifier is None


def test_file_holds_only_plain_arrays_and_json(tmp_path):
    path, model, _ = _save(tmp_path)
    with np.load(path, allow_pickle=False) as archive:
        keys = set(archive.files)
        meta = json.loads(archive["meta.json"].tobytes().decode())
        assert archive["encoder/blocks.0.attn.W_Q"].dtype == np.float32
    assert keys == {"meta.json", "classifier/W", "classifier/b"} | {
        f"encoder/{name}" for name in model.params
    }
    assert meta["config"] == CONFIGS[0].to_dict()
    assert meta["classifier"] == {"n_classes": 5, "pooling": "mean"}


def test_missing_tensor_is_named(tmp_path):
    path, _, _ = _save(tmp_path)
    _rewrite(path, lambda a: a.pop("encoder/blocks.1.ffn.W_2"))
    with pytest.raises(ValueError, match=r"m\.npz.*missing.*blocks\.1\.ffn\.W_2"):
        load_checkpoint(path)


def test_wrong_shape_is_named(tmp_path):
    path, _, _ = _save(tmp_path)
    _rewrite(path, lambda a: a.update({"encoder/blocks.0.attn.W_K": np.zeros((8, 7), "f4")}))
    with pytest.raises(ValueError, match=r"m\.npz.*blocks\.0\.attn\.W_K.*\(8, 7\).*\(8, 8\)"):
        load_checkpoint(path)


def test_wrong_classifier_shape_is_named(tmp_path):
    path, _, _ = _save(tmp_path)
    _rewrite(path, lambda a: a.update({"classifier/W": np.zeros((8, 4), "f4")}))
    with pytest.raises(
        ValueError, match=r"m\.npz: tensor 'classifier/W' has shape \(8, 4\), expected \(8, 5\)"
    ):
        load_checkpoint(path)


def test_bad_json_is_reported(tmp_path):
    path, _, _ = _save(tmp_path)
    _rewrite(path, lambda a: a.update({"meta.json": np.frombuffer(b"{not json", np.uint8)}))
    with pytest.raises(ValueError, match=r"m\.npz: 'meta\.json' is not valid UTF-8 JSON"):
        load_checkpoint(path)


def test_bad_config_field_is_reported(tmp_path):
    path, _, _ = _save(tmp_path)

    def change(arrays):
        meta = json.loads(arrays["meta.json"].tobytes())
        meta["config"]["n_heads"] = 3  # 8 is not divisible by 3
        arrays["meta.json"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)

    _rewrite(path, change)
    with pytest.raises(ValueError, match=r"m\.npz.*invalid config.*divisible by n_heads"):
        load_checkpoint(path)


def test_nan_tensor_is_named(tmp_path):
    path, _, _ = _save(tmp_path)
    _rewrite(path, lambda a: a.update({"encoder/embed.W_E": np.full((11, 8), np.nan, "f4")}))
    with pytest.raises(ValueError, match=r"embed\.W_E.*NaN"):
        load_checkpoint(path)


def test_truncated_file_is_not_a_checkpoint(tmp_path):
    path, _, _ = _save(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"m\.npz is not a checkpoint.*truncated"):
        load_checkpoint(path)


def test_other_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.npz"
    path.write_text("hello")
    with pytest.raises(ValueError, match=r"notes\.npz is not a checkpoint"):
        load_checkpoint(path)


def test_pickled_array_is_refused(tmp_path):
    path, _, _ = _save(tmp_path)
    _rewrite(path, lambda a: a.update({"encoder/embed.W_E": np.array([{"x": 1}], dtype=object)}))
    with pytest.raises(ValueError, match=r"embed\.W_E"):
        load_checkpoint(path)


def test_corrupted_member_is_reported(tmp_path):
    path, _, _ = _save(tmp_path)
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("encoder/embed.W_E.npy")
    data = bytearray(path.read_bytes())
    data[info.header_offset + 120] ^= 0xFF  # flip a byte inside the member's data
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"m\.npz"):
        load_checkpoint(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint file"):
        load_checkpoint(tmp_path / "absent.npz")


def test_metadata_must_be_json(tmp_path):
    with pytest.raises(TypeError, match="metadata must be JSON"):
        save_checkpoint(tmp_path / "x.npz", make_encoder(CONFIGS[0]), metadata={"a": object()})


# ------------------------------------------------------------------ hostile meta.json


def _change_meta(path: Path, change) -> None:
    def rewrite(arrays):
        meta = json.loads(arrays["meta.json"].tobytes())
        change(meta)
        arrays["meta.json"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)

    _rewrite(path, rewrite)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"metadata": ["task", "reverse"]}, r"entry 'metadata' must be an object, got list"),
        ({"metadata": "reverse"}, r"entry 'metadata' must be an object, got str"),
        ({"metadata": None}, r"entry 'metadata' must be an object, got NoneType"),
        ({"config": None}, r"entry 'config' must be an object, got NoneType"),
        ({"config": [1, 2]}, r"entry 'config' must be an object, got list"),
        ({"classifier": 5}, r"entry 'classifier' must be an object or null, got int"),
        ({"classifier": {"n_classes": "5", "pooling": "mean"}}, r"n_classes must be a positive"),
        ({"classifier": {"n_classes": True, "pooling": "mean"}}, r"n_classes must be a positive"),
        ({"classifier": {"n_classes": 5, "pooling": ["mean"]}}, r"pooling must be one of"),
        ({"classifier": {"n_classes": 5}}, r"'classifier' must have the keys 'n_classes' and"),
        ({"version": True}, r"checkpoint version True, expected 1"),
        ({"format": None}, r"does not describe a minitransformer-checkpoint file"),
    ],
)
def test_malformed_meta_entries_are_named(tmp_path, change, match):
    path, _, _ = _save(tmp_path)
    _change_meta(path, lambda meta: meta.update(change))
    with pytest.raises(ValueError, match=match) as info:
        load_checkpoint(path)
    assert str(info.value).startswith(f"{path}: ")


@pytest.mark.parametrize(
    "value",
    [np.array(["{}"], dtype=object), np.array(["{}"]), np.zeros((2, 3), np.uint8), np.ones(3)],
    ids=["object array", "str array", "2-D uint8", "float"],
)
def test_meta_json_of_the_wrong_kind_is_named(tmp_path, value):
    path, _, _ = _save(tmp_path)
    _rewrite(path, lambda a: a.update({"meta.json": value}))
    with pytest.raises(ValueError, match=r"m\.npz: 'meta\.json' must be a 1-D uint8 array"):
        load_checkpoint(path)


def test_member_that_is_not_an_array_or_is_repeated(tmp_path):
    path, _, _ = _save(tmp_path)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("notes.txt", "hello")
    with pytest.raises(ValueError, match=r"m\.npz: unexpected member 'notes\.txt'"):
        load_checkpoint(path)
    path, _, _ = _save(tmp_path, "twice.npz")
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(path, "a") as archive:
        archive.writestr("classifier/b.npy", b"")
    with pytest.raises(ValueError, match=r"member 'classifier/b\.npy' appears twice"):
        load_checkpoint(path)


# ------------------------------------------------------------- non-finite tensors


@pytest.mark.parametrize(
    "name, value, match",
    [
        ("classifier/W", np.full((8, 5), np.nan, "f4"), r"'classifier/W' holds 40 .*NaN"),
        ("classifier/b", np.array([0, 0, np.inf, 0, 0], "f4"), r"'classifier/b' holds 1 .*NaN"),
        # finite in float64, infinite once cast to the model's float32
        ("classifier/b", np.array([1e300, 0, 0, 0, 0]), r"'classifier/b' .* too large for float32"),
        (
            "encoder/blocks.1.ln2.beta",
            np.full(8, -1e300),
            r"'encoder/blocks\.1\.ln2\.beta' holds 8",
        ),
        ("encoder/embed.W_E", np.full((11, 8), np.nan, "f2"), r"'encoder/embed\.W_E' holds 88"),
    ],
)
def test_non_finite_tensors_are_refused_after_the_cast(tmp_path, name, value, match):
    path, _, _ = _save(tmp_path)
    _rewrite(path, lambda a: a.update({name: value}))
    with pytest.raises(ValueError, match=rf"m\.npz: tensor {match}"):
        load_checkpoint(path)


def test_float64_tensors_load_into_a_float32_model_when_they_fit(tmp_path):
    path, model, head = _save(tmp_path)
    _rewrite(path, lambda a: a.update({"classifier/W": a["classifier/W"].astype(np.float64)}))
    loaded = load_checkpoint(path).classifier
    assert loaded.params["W"].dtype == np.float32
    np.testing.assert_array_equal(loaded.params["W"], head.params["W"])


@pytest.mark.parametrize(
    "metadata, match",
    [
        (["task"], r"metadata must be a dict or None, got list"),
        ("reverse", r"metadata must be a dict or None, got str"),
        ({"accuracy": float("nan")}, r"metadata must be JSON-serialisable: .*not JSON compliant"),
    ],
)
def test_metadata_that_could_not_be_read_back_is_refused_when_saving(tmp_path, metadata, match):
    with pytest.raises(TypeError, match=match):
        save_checkpoint(tmp_path / "x.npz", make_encoder(CONFIGS[0]), metadata=metadata)
    assert not (tmp_path / "x.npz").exists()


def test_deeply_nested_metadata_is_refused_when_saving(tmp_path):
    nested: list = []
    for _ in range(200):
        nested = [nested]
    with pytest.raises(ValueError, match=r"metadata is not valid UTF-8 JSON: nested more than"):
        save_checkpoint(tmp_path / "x.npz", make_encoder(CONFIGS[0]), metadata={"a": nested})
