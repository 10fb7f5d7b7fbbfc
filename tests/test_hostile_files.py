"""Hostile and careless files, class by class, across every loader (checkpoint ``.npz``,
safetensors, ``config.json``, the tokenizer's files, a shard index):

* a small file that declares a huge model is refused at once, without the memory or the time
  it declares (the time and the peak of ``tracemalloc`` are bounded);
* every JSON file is read by one function with one set of limits, and its errors name the file;
* a corrupted archive (single bit flips, "encrypted" flags, unknown compression methods) is
  refused as a corrupted file, naming it, or loads the very same weights.
"""

from __future__ import annotations

import io
import json
import random
import struct
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import make_encoder
from hypothesis import given, settings
from hypothesis import strategies as st

from minitransformer.checkpoint import load_checkpoint, save_checkpoint
from minitransformer.config import EncoderConfig
from minitransformer.file_checks import (
    MAX_JSON_DEPTH,
    MAX_LAYERS,
    MAX_PARAMETERS,
    read_json,
)
from minitransformer.heads import Classifier
from minitransformer.pretrained import load_encoder
from minitransformer.safetensors_io import load_safetensors
from minitransformer.tokenizer import WordPieceTokenizer

CONFIG = EncoderConfig(vocab_size=11, d_model=8, n_heads=2, n_layers=2, d_ff=16, max_len=12)
HF_CONFIG = {
    "model_type": "bert", "vocab_size": 11, "hidden_size": 8, "num_attention_heads": 2,
    "num_hidden_layers": 2, "intermediate_size": 16, "max_position_embeddings": 12,
}  # fmt: skip
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def assert_refused_cheaply(load, match: str, seconds: float = 2.0, megabytes: float = 20.0):
    """``load()`` raises ValueError matching ``match`` within ``seconds``, and allocates at most
    ``megabytes`` on the way (peak of ``tracemalloc``, which sees NumPy's buffers too)."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ValueError, match=match) as info:
            load()
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < seconds, f"refused after {elapsed:.2f} s"
    assert peak < megabytes * 1e6, f"refused after allocating {peak / 1e6:.0f} MB"
    return info.value


# ------------------------------------------------------------------------ npz archives


def save_tiny(path: Path) -> Path:
    return save_checkpoint(path, make_encoder(CONFIG, seed=1), Classifier(8, 3, seed=2))


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def npy_header_only(shape: tuple[int, ...], dtype: str = "<f4") -> bytes:
    """A .npy header that declares ``shape``, followed by no data at all."""
    buffer = io.BytesIO()
    header = {"descr": dtype, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)  # the magic string, then the header
    return buffer.getvalue()


def rewrite_members(path: Path, change) -> None:
    """Rewrite the archive with ``change(members)`` applied to its dict name -> raw bytes;
    a value may be ``(bytes, zipfile.ZIP_DEFLATED)`` to compress that member."""
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    change(members)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            data, method = data if isinstance(data, tuple) else (data, zipfile.ZIP_STORED)
            archive.writestr(name, data, compress_type=method)


def change_meta(path: Path, change) -> None:
    def rewrite(members):
        meta = json.loads(np.load(io.BytesIO(members["meta.json.npy"])).tobytes())
        change(meta)
        raw = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        members["meta.json.npy"] = npy_bytes(raw)

    rewrite_members(path, rewrite)


@pytest.fixture(scope="module")
def zeros_100mb() -> bytes:
    """A .npy of 100 MB of zeros (25 million float32), deflated to about 100 KB."""
    return npy_header_only((25_000_000,)) + bytes(100_000_000)  # rewrite_members deflates it


# ------------------------------------------------------------- 1. bounded cost: sizes


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("n_layers", 10**7, r"n_layers = 10,000,000, more than MAX_LAYERS = 1,000"),
        ("vocab_size", 10**12, r"parameters, more than MAX_PARAMETERS.*'embed\.W_E'"),
        ("d_ff", 10**10, r"more than MAX_PARAMETERS.*'blocks\.0\.ffn\.W_1'"),
        ("max_len", 10**10, r"more than MAX_PARAMETERS.*'sinusoidal position table'"),
    ],
)
def test_checkpoint_declaring_a_huge_model_is_refused_cheaply(tmp_path, field, value, match):
    path = save_tiny(tmp_path / "m.npz")
    change_meta(path, lambda meta: meta["config"].update({field: value}))
    assert path.stat().st_size < 20_000
    error = assert_refused_cheaply(lambda: load_checkpoint(path), match)
    assert str(error).startswith(f"{path}: ")


def test_checkpoint_declaring_a_huge_classifier_is_refused_cheaply(tmp_path):
    path = save_tiny(tmp_path / "m.npz")
    change_meta(path, lambda meta: meta["classifier"].update({"n_classes": 10**12}))
    assert_refused_cheaply(lambda: load_checkpoint(path), r"m\.npz: .*MAX_PARAMETERS")


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("num_hidden_layers", 10**7, r"'num_hidden_layers' is 10,000,000, more than MAX_LAYERS"),
        ("vocab_size", 10**12, r"more than MAX_PARAMETERS.*'embed\.W_E'"),
        ("intermediate_size", 10**10, r"more than MAX_PARAMETERS.*'blocks\.0\.ffn\.W_1'"),
        ("max_position_embeddings", 10**10, r"more than MAX_PARAMETERS.*'embed\.W_pos'"),
    ],
)
def test_config_json_declaring_a_huge_model_is_refused_cheaply(tmp_path, field, value, match):
    (tmp_path / "config.json").write_text(json.dumps({**HF_CONFIG, field: value}))
    (tmp_path / "model.safetensors").write_bytes(b"never read")
    error = assert_refused_cheaply(lambda: load_encoder(tmp_path), match)
    assert str(error).startswith(f"{tmp_path / 'config.json'}: ")


def test_limits_are_far_above_real_models():
    bert_large = EncoderConfig(
        vocab_size=30522, d_model=1024, n_heads=16, n_layers=24, d_ff=4096, max_len=512,
        positional="learned", type_vocab_size=2, embed_layer_norm=True,
    )  # fmt: skip
    from minitransformer.file_checks import check_model_size

    assert check_model_size(bert_large, "bert-large") < MAX_PARAMETERS / 2
    assert bert_large.n_layers < MAX_LAYERS / 10


def test_unexpected_member_is_refused_before_it_is_decompressed(tmp_path, zeros_100mb):
    """An extra tensor that inflates to 100 MB: the names are compared first."""
    path = save_tiny(tmp_path / "m.npz")
    rewrite_members(
        path, lambda m: m.update({"encoder/extra.npy": (zeros_100mb, zipfile.ZIP_DEFLATED)})
    )
    assert path.stat().st_size < 1_000_000
    assert_refused_cheaply(lambda: load_checkpoint(path), r"unexpected array\(s\) \['encoder/extra")


def test_misshapen_member_is_refused_before_its_data_is_decompressed(tmp_path, zeros_100mb):
    path = save_tiny(tmp_path / "m.npz")
    rewrite_members(
        path, lambda m: m.update({"encoder/embed.W_E.npy": (zeros_100mb, zipfile.ZIP_DEFLATED)})
    )
    assert_refused_cheaply(
        lambda: load_checkpoint(path),
        r"m\.npz: tensor 'encoder/embed\.W_E' has shape \(25000000,\), expected \(11, 8\)",
    )


@pytest.mark.parametrize("shape", [(4_000_000_000,), (11, 8, 10**9), (2**62,)])
def test_member_declaring_a_huge_tensor_is_refused_by_name(tmp_path, shape):
    """A .npy header that declares 16 GB (and holds nothing) is never allocated."""
    path = save_tiny(tmp_path / "m.npz")
    rewrite_members(path, lambda m: m.update({"classifier/b.npy": npy_header_only(shape)}))
    assert_refused_cheaply(
        lambda: load_checkpoint(path), r"m\.npz: tensor 'classifier/b' has shape .*expected \(3,\)"
    )


def test_zip_directory_that_lies_about_a_size_is_refused(tmp_path):
    path = save_tiny(tmp_path / "m.npz")
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        size = archive.getinfo("classifier/b.npy").file_size
    # the central directory entry of classifier/b.npy: its uncompressed size is at offset 24
    entry = data.index(b"classifier/b.npy", data.index(b"PK\x01\x02")) - 46
    assert struct.unpack_from("<I", data, entry + 24)[0] == size
    struct.pack_into("<I", data, entry + 24, size + 1_000_000)
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"m\.npz: tensor 'classifier/b': corrupted file: the zip"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "shape, offsets",
    [([2**31, 4], [0, 2**35]), ([10**12], [0, 4 * 10**12]), ([3, 0, 10**18], [0, 0])],
)
def test_safetensors_declaring_a_huge_tensor_is_refused_cheaply(tmp_path, shape, offsets):
    header = json.dumps({"w": {"dtype": "F32", "shape": shape, "data_offsets": offsets}})
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header.encode() + bytes(16))
    error = assert_refused_cheaply(lambda: load_safetensors(path), r"tensor 'w'")
    assert str(error).startswith(f"{path}: ")


# --------------------------------------------------------- 2. one JSON reader everywhere

HOSTILE_JSON = {
    "nested 100,000 deep": b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    f"nested {MAX_JSON_DEPTH + 1} deep": b'{"a": ' + b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    + b"}",
    "5000-digit integer": b'{"vocab_size": 1' + b"0" * 5000 + b"}",
    "NaN": b'{"layer_norm_eps": NaN}',
    "Infinity": b'{"a": -Infinity}',
    "1e400": b'{"layer_norm_eps": 1e400}',
    "repeated key": b'{"model_type": "bert", "model_type": "gpt2"}',
    "not UTF-8": b'{"a": "\xff"}',
    "truncated": b'{"a": [1, 2',
    "empty": b"",
}  # fmt: skip


def _in_checkpoint_meta(tmp_path: Path, text: bytes) -> tuple[Path, object]:
    path = save_tiny(tmp_path / "m.npz")
    raw = npy_bytes(np.frombuffer(text, dtype=np.uint8))
    rewrite_members(path, lambda m: m.update({"meta.json.npy": raw}))
    return path, lambda: load_checkpoint(path)


def _in_safetensors_header(tmp_path: Path, text: bytes) -> tuple[Path, object]:
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", len(text)) + text)
    return path, lambda: load_safetensors(path)


def _in_config_json(tmp_path: Path, text: bytes) -> tuple[Path, object]:
    (tmp_path / "config.json").write_bytes(text)
    return tmp_path / "config.json", lambda: load_encoder(tmp_path)


def _in_shard_index(tmp_path: Path, text: bytes) -> tuple[Path, object]:
    (tmp_path / "config.json").write_text(json.dumps(HF_CONFIG))
    (tmp_path / "model.safetensors.index.json").write_bytes(text)
    return tmp_path / "model.safetensors.index.json", lambda: load_encoder(tmp_path)


def _in_tokenizer_file(name: str):
    def make(tmp_path: Path, text: bytes) -> tuple[Path, object]:
        if name != "tokenizer.json":
            (tmp_path / "vocab.txt").write_text("\n".join(SPECIALS) + "\n")
        (tmp_path / name).write_bytes(text)
        return tmp_path / name, lambda: WordPieceTokenizer.from_dir(tmp_path)

    return make


JSON_PLACES = {
    "checkpoint meta.json": _in_checkpoint_meta,
    "safetensors header": _in_safetensors_header,
    "config.json": _in_config_json,
    "model.safetensors.index.json": _in_shard_index,
    "tokenizer_config.json": _in_tokenizer_file("tokenizer_config.json"),
    "special_tokens_map.json": _in_tokenizer_file("special_tokens_map.json"),
    "tokenizer.json": _in_tokenizer_file("tokenizer.json"),
}


@pytest.mark.parametrize("place", JSON_PLACES.values(), ids=JSON_PLACES.keys())
@pytest.mark.parametrize("text", HOSTILE_JSON.values(), ids=HOSTILE_JSON.keys())
def test_hostile_json_is_refused_naming_the_file(tmp_path, place, text):
    path, load = place(tmp_path, text)
    with pytest.raises(ValueError, match="is not valid UTF-8 JSON") as info:
        load()
    assert str(path) in str(info.value)


def test_json_limits_name_what_was_exceeded():
    deep = b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1)
    with pytest.raises(ValueError, match=r"^f\.json is not .*nested more than MAX_JSON_DEPTH"):
        read_json(deep, "f.json")
    with pytest.raises(ValueError, match=r"integer of 5000 digits, more than MAX_INT_DIGITS"):
        read_json(b"-" + b"9" * 5000, "f.json")
    with pytest.raises(ValueError, match=r"key\(s\) \['a'\] given more than once"):
        read_json(b'{"a": 1, "b": {"a": 2}, "a": 3}', "f.json")
    with pytest.raises(ValueError, match=r"'1e400' is too large for a float"):
        read_json(b"[1e400]", "f.json")
    ok = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert read_json(ok, "f.json") is not None
    assert read_json(b'{"n": 1000000000000000019884624838656}', "f")["n"] == int(1e30)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(JSON_VALUES)
def test_read_json_reads_back_what_json_writes(value):
    assert read_json(json.dumps(value).encode(), "f.json") == value


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | JSON_VALUES.map(lambda v: json.dumps(v).encode()[:-1]))
def test_read_json_raises_only_value_error(data):
    """Any bytes at all, including valid JSON cut short: parsed, or a ValueError naming them."""
    try:
        read_json(data, "f.json")
    except ValueError as error:
        assert str(error).startswith("f.json ")


# ------------------------------------------------------------- 3. corrupted archives


def _flip(path: Path, data: bytes, bit: int) -> None:
    flipped = bytearray(data)
    flipped[bit // 8] ^= 1 << (bit % 8)
    path.write_bytes(bytes(flipped))


def test_single_bit_flips_are_refused_or_change_nothing(tmp_path):
    """Every bit of the last zip structure (the end-of-directory record) and 200 bits drawn at
    random: each flip raises ValueError naming the file, or loads exactly the same weights (a
    flip in a field that is not read)."""
    original = save_tiny(tmp_path / "m.npz")
    data = original.read_bytes()
    reference = load_checkpoint(original)
    end_record = data.rindex(b"PK\x05\x06")
    bits = list(range(8 * end_record, 8 * len(data)))
    bits += random.Random(0).sample(range(8 * len(data)), 200)
    flipped = tmp_path / "flipped.npz"
    refused = 0
    for bit in bits:
        _flip(flipped, data, bit)
        try:
            loaded = load_checkpoint(flipped)
        except ValueError as error:
            assert str(flipped) in str(error), f"bit {bit}: {error}"
            refused += 1
            continue
        for name, value in reference.model.params.items():
            np.testing.assert_array_equal(loaded.model.params[name], value, err_msg=f"bit {bit}")
        np.testing.assert_array_equal(
            loaded.classifier.params["W"], reference.classifier.params["W"]
        )
    assert refused > len(bits) / 2


@pytest.mark.parametrize(
    "field_offset, value, reason",
    [
        (8, 1, r"RuntimeError: .*encrypted"),  # general-purpose flag bit 0: "encrypted"
        (10, 99, r"NotImplementedError: That compression method is not supported"),
        (10, 12, r"OSError"),  # bzip2 on bytes that are not bzip2
        (10, 14, r"BadZipFile|LZMAError"),  # lzma
    ],
)
def test_damaged_zip_directory_is_a_corrupted_file(tmp_path, field_offset, value, reason):
    path = save_tiny(tmp_path / "m.npz")
    data = bytearray(path.read_bytes())
    entry = data.index(b"PK\x01\x02")  # the directory entry of the first member
    struct.pack_into("<H", data, entry + field_offset, value)
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"m\.npz: corrupted file: member '.*' cannot be read"):
        load_checkpoint(path)
    with pytest.raises(ValueError, match=reason):
        load_checkpoint(path)
