"""The pure-NumPy safetensors reader and writer, checked against the reference ``safetensors``
package in both directions, and on every kind of corrupted file."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from minitransformer.safetensors_io import (
    DTYPES,
    TensorInfo,
    load_safetensors,
    read_header,
    save_safetensors,
)


def sample_tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "weight": rng.standard_normal((3, 5)).astype(np.float32),
        "bias": rng.standard_normal(5).astype(np.float64),
        "half": rng.standard_normal((2, 2, 2)).astype(np.float16),
        "ids": np.arange(7, dtype=np.int64),
        "small": np.array([-3, 4], dtype=np.int8),
        "flags": np.array([True, False, True]),
        "empty": np.zeros((0, 4), dtype=np.float32),
        "scalar": np.array(2.5, dtype=np.float32),
    }


def write_raw(path: Path, header: dict, data: bytes, header_length: int | None = None) -> Path:
    """A file from a header dict and data bytes, with a possibly lying header length."""
    header_bytes = json.dumps(header).encode()
    length = len(header_bytes) if header_length is None else header_length
    path.write_bytes(struct.pack("<Q", length) + header_bytes + data)
    return path


def test_reads_what_the_reference_library_writes(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    tensors = sample_tensors()
    path = tmp_path / "ref.safetensors"
    safetensors_numpy.save_file(tensors, str(path), metadata={"format": "np"})
    loaded = load_safetensors(path)
    assert set(loaded) == set(tensors)
    for name, value in tensors.items():
        assert loaded[name].dtype == value.dtype, name
        assert loaded[name].shape == value.shape, name
        np.testing.assert_array_equal(loaded[name], value)
    assert read_header(path)[1] == {"format": "np"}


def test_reference_library_reads_what_we_write(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    tensors = sample_tensors()
    path = tmp_path / "ours.safetensors"
    save_safetensors(path, tensors, metadata={"note": "test"})
    loaded = safetensors_numpy.load_file(str(path))
    for name, value in tensors.items():
        assert loaded[name].dtype == value.dtype, name
        np.testing.assert_array_equal(loaded[name], value)
    # the data part starts 8-byte aligned
    (header_length,) = struct.unpack("<Q", path.read_bytes()[:8])
    assert header_length % 8 == 0


def test_round_trip_and_header(tmp_path):
    tensors = sample_tensors()
    path = tmp_path / "t.safetensors"
    save_safetensors(path, tensors)
    header, metadata = read_header(path)
    assert metadata == {}
    assert list(header) == list(tensors)
    assert header["weight"] == TensorInfo("F32", (3, 5), 0, 60)
    assert header["bias"] == TensorInfo("F64", (5,), 60, 100)
    loaded = load_safetensors(path, names=["bias", "ids"])
    assert list(loaded) == ["bias", "ids"]
    np.testing.assert_array_equal(loaded["ids"], tensors["ids"])


def test_big_endian_input_is_stored_little_endian(tmp_path):
    path = tmp_path / "be.safetensors"
    save_safetensors(path, {"x": np.arange(4, dtype=">f4")})
    assert path.read_bytes()[-16:] == np.arange(4, dtype="<f4").tobytes()
    np.testing.assert_array_equal(load_safetensors(path)["x"], np.arange(4))


def test_bfloat16_is_widened_to_float32(tmp_path):
    values = np.array([1.0, -2.5, 3.140625, 0.0], dtype=np.float32)  # exact in bfloat16
    top_halves = (values.view(np.uint32) >> 16).astype("<u2")
    header = {"x": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 8]}}
    path = write_raw(tmp_path / "bf16.safetensors", header, top_halves.tobytes())
    loaded = load_safetensors(path)["x"]
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, values.reshape(2, 2))


def test_unaligned_tensor_is_read_correctly(tmp_path):
    data = b"\x07" + np.arange(3, dtype="<f4").tobytes()
    header = {
        "byte": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},
        "x": {"dtype": "F32", "shape": [3], "data_offsets": [1, 13]},
    }
    loaded = load_safetensors(write_raw(tmp_path / "u.safetensors", header, data))
    np.testing.assert_array_equal(loaded["x"], [0.0, 1.0, 2.0])
    assert loaded["byte"][0] == 7


def test_writer_rejects_unsupported_dtype_and_reserved_name(tmp_path):
    with pytest.raises(TypeError, match="'c'.*complex"):
        save_safetensors(tmp_path / "a", {"c": np.zeros(2, dtype=np.complex64)})
    with pytest.raises(ValueError, match="__metadata__"):
        save_safetensors(tmp_path / "b", {"__metadata__": np.zeros(2)})


def test_unknown_name_requested(tmp_path):
    path = tmp_path / "t.safetensors"
    save_safetensors(path, {"a": np.zeros(2, np.float32)})
    with pytest.raises(ValueError, match=r"t\.safetensors.*\['nope'\]"):
        load_safetensors(path, names=["nope"])


# ------------------------------------------------------------------------- corrupted files

F32_2x2 = {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}


@pytest.mark.parametrize(
    ("header", "data", "message"),
    [
        ({"w": {**F32_2x2, "dtype": "F128"}}, bytes(16), r"'w'.*unknown dtype 'F128'"),
        ({"w": {**F32_2x2, "shape": [2, 3]}}, bytes(16), r"'w'.*needs 24 bytes.*hold 16"),
        ({"w": {**F32_2x2, "shape": [2, -2]}}, bytes(16), r"'w'.*non-negative"),
        ({"w": {**F32_2x2, "data_offsets": [16, 0]}}, bytes(16), r"'w'.*end before"),
        ({"w": {**F32_2x2, "data_offsets": [0]}}, bytes(16), r"'w'.*\[begin, end\]"),
        ({"w": {"dtype": "F32", "shape": [4]}}, bytes(16), r"'w'.*exactly the keys"),
        ({"w": F32_2x2}, bytes(8), r"'w' ends at byte 16.*only 8 bytes"),
        ({"w": F32_2x2}, bytes(20), r"data part has 20 bytes.*trailing bytes after tensor 'w'"),
        (
            {"a": F32_2x2, "b": {**F32_2x2, "data_offsets": [8, 24]}},
            bytes(24),
            r"tensor 'b' bytes \[8, 24\) overlap tensor 'a'",
        ),
        (
            {"a": {**F32_2x2, "data_offsets": [4, 20]}},
            bytes(20),
            r"bytes \[0, 4\).*belong to no tensor.*'a'",
        ),
        ({"__metadata__": {"k": 1}}, b"", r"__metadata__"),
    ],
)
def test_corrupted_header_names_file_and_tensor(tmp_path, header, data, message):
    path = write_raw(tmp_path / "bad.safetensors", header, data)
    with pytest.raises(ValueError, match=message) as info:
        load_safetensors(path)
    assert str(path) in str(info.value)


def test_truncated_file(tmp_path):
    path = tmp_path / "tiny.safetensors"
    path.write_bytes(b"\x01\x02\x03")
    with pytest.raises(ValueError, match=r"tiny\.safetensors.*3 bytes, too short"):
        read_header(path)


def test_header_length_past_end_of_file(tmp_path):
    path = write_raw(tmp_path / "long.safetensors", {"w": F32_2x2}, bytes(16), header_length=10**6)
    with pytest.raises(ValueError, match=r"long\.safetensors.*header length is 1000000 bytes"):
        read_header(path)


def test_cut_in_the_middle_of_the_data(tmp_path):
    path = tmp_path / "cut.safetensors"
    save_safetensors(path, {"a": np.zeros(4, np.float32), "b": np.ones(8, np.float32)})
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(ValueError, match=r"cut\.safetensors: tensor 'b' ends at byte 48"):
        load_safetensors(path)


@pytest.mark.parametrize(
    ("header_bytes", "message"),
    [
        (b'{"w": {"dtype": "F32"', "not valid UTF-8 JSON"),
        (b"\xff\xfe{}", "not valid UTF-8 JSON"),
        (b"[1, 2]", "must be a JSON object, got list"),
        (b'{"w": {}, "w": {}}', r"key\(s\) \['w'\] given more than once"),
    ],
)
def test_bad_json(tmp_path, header_bytes, message):
    path = tmp_path / "json.safetensors"
    path.write_bytes(struct.pack("<Q", len(header_bytes)) + header_bytes)
    with pytest.raises(ValueError, match=message) as info:
        read_header(path)
    assert str(path) in str(info.value)


def test_dtype_table_itemsizes():
    assert {code: dtype.itemsize for code, dtype in DTYPES.items()} == {
        "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
        "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1,
    }  # fmt: skip


@pytest.mark.parametrize(
    "entry, message",
    [
        ({**F32_2x2, "shape": [0, 10**30], "data_offsets": [0, 0]}, r"cannot be a NumPy array"),
        ({**F32_2x2, "shape": [0, 2**62, 4], "data_offsets": [0, 0]}, r"cannot be a NumPy array"),
        ({**F32_2x2, "shape": [1] * 40, "data_offsets": [0, 4]}, r"at most 32 axes"),
        ({**F32_2x2, "dtype": ["F32"]}, r"unknown dtype \['F32'\]"),
        ({**F32_2x2, "dtype": None}, r"unknown dtype None"),
        ({**F32_2x2, "shape": [2, 2.0]}, r"non-negative ints, got \[2, 2\.0\]"),
        ({**F32_2x2, "shape": [True, 4]}, r"non-negative ints"),
        ({**F32_2x2, "shape": "2x2"}, r"non-negative ints"),
    ],
)
def test_hostile_entry_is_named(tmp_path, entry, message):
    size = entry["data_offsets"][1]
    path = write_raw(tmp_path / "bad.safetensors", {"w": entry}, bytes(size))
    with pytest.raises(ValueError, match=rf"bad\.safetensors: tensor 'w': .*{message}"):
        load_safetensors(path)


def test_empty_tensor_with_a_large_axis_still_loads(tmp_path):
    entry = {"dtype": "F32", "shape": [0, 10**12], "data_offsets": [0, 0]}
    loaded = load_safetensors(write_raw(tmp_path / "e.safetensors", {"w": entry}, b""))["w"]
    assert loaded.shape == (0, 10**12) and loaded.dtype == np.float32


@pytest.mark.parametrize("metadata", [[], "format", {"format": 1}, {"a": None}, None])
def test_metadata_of_the_wrong_type_in_a_file(tmp_path, metadata):
    path = write_raw(tmp_path / "m.safetensors", {"__metadata__": metadata}, b"")
    with pytest.raises(ValueError, match=r"m\.safetensors: '__metadata__' must map strings"):
        read_header(path)


@pytest.mark.parametrize("metadata", [["a"], "format", {"format": 1}, {1: "a"}])
def test_metadata_of_the_wrong_type_when_writing(tmp_path, metadata):
    with pytest.raises(TypeError, match=r"metadata must be a dict of str -> str or None"):
        save_safetensors(tmp_path / "m.safetensors", {"a": np.zeros(2)}, metadata=metadata)


def test_long_names_and_values_are_cut_in_messages(tmp_path):
    name = "w" * 100_000
    entry = {**F32_2x2, "dtype": "X" * 100_000}
    path = write_raw(tmp_path / "long.safetensors", {name: entry}, bytes(16))
    with pytest.raises(ValueError, match="unknown dtype") as info:
        read_header(path)
    assert len(str(info.value)) < 500


def test_only_the_tensors_asked_for_are_read(tmp_path, monkeypatch):
    path = tmp_path / "t.safetensors"
    save_safetensors(path, {"big": np.zeros(100_000, np.float32), "small": np.ones(3)})
    counts = []
    fromfile = np.fromfile
    monkeypatch.setattr(
        np, "fromfile", lambda *a, **k: counts.append(k["count"]) or fromfile(*a, **k)
    )
    loaded = load_safetensors(path, names=["small"])
    assert counts == [3] and list(loaded) == ["small"]
    assert loaded["small"].flags.writeable and loaded["small"].flags.aligned
