import gzip

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from learning.errors import DataError
from learning.idx import read_idx, write_idx


def one_line_error(excinfo: pytest.ExceptionInfo, *needles: str) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg
    return msg


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("shape", [(7,), (3, 4, 5), (2, 3)])
def test_round_trip(tmp_path, suffix, shape):
    arr = np.arange(np.prod(shape), dtype=np.uint8).reshape(shape)
    path = tmp_path / f"a-idx{suffix}"
    write_idx(path, arr)
    out = read_idx(path)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, arr)
    assert out.flags.writeable


@settings(max_examples=25, deadline=None)
@given(
    arr=arrays(np.uint8, array_shapes(min_dims=1, max_dims=4, max_side=5)),
    gz=st.booleans(),
)
def test_round_trip_property(tmp_path_factory, arr, gz):
    path = tmp_path_factory.mktemp("idx") / ("x.gz" if gz else "x")
    write_idx(path, arr)
    np.testing.assert_array_equal(read_idx(path, expected_ndim=arr.ndim), arr)


def test_gz_file_is_really_gzipped(tmp_path):
    path = tmp_path / "labels.gz"
    write_idx(path, np.array([1, 2, 3], dtype=np.uint8))
    raw = gzip.decompress(path.read_bytes())
    assert raw[:4] == b"\x00\x00\x08\x01"
    assert int.from_bytes(raw[4:8], "big") == 3


def test_bad_magic_names_file_and_expected_value(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    write_idx(path, np.zeros(4, dtype=np.uint8))  # a label file where images are expected
    with pytest.raises(DataError) as excinfo:
        read_idx(path, expected_ndim=3)
    one_line_error(excinfo, str(path), "bad magic number 0x0801", "expected 0x0803", "image")


def test_garbage_magic(tmp_path):
    path = tmp_path / "junk"
    path.write_bytes(b"\x12\x34\x56\x78" + bytes(16))
    with pytest.raises(DataError) as excinfo:
        read_idx(path)
    one_line_error(excinfo, str(path), "0x12345678")


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_truncated_payload(tmp_path, suffix):
    full = tmp_path / "full"
    write_idx(full, np.zeros((4, 3, 3), dtype=np.uint8))
    path = tmp_path / f"cut{suffix}"
    data = full.read_bytes()[:-5]
    path.write_bytes(gzip.compress(data) if suffix else data)
    with pytest.raises(DataError) as excinfo:
        read_idx(path, expected_ndim=3)
    one_line_error(excinfo, str(path), "truncated", "31 bytes", "need 36")


def test_trailing_bytes(tmp_path):
    path = tmp_path / "long"
    write_idx(path, np.zeros(3, dtype=np.uint8))
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(DataError) as excinfo:
        read_idx(path, expected_ndim=1)
    one_line_error(excinfo, str(path), "trailing")


def test_truncated_gzip_stream(tmp_path):
    path = tmp_path / "broken.gz"
    payload = gzip.compress(bytes(4) + np.random.default_rng(0).bytes(5000))
    path.write_bytes(payload[: len(payload) // 2])
    with pytest.raises(DataError) as excinfo:
        read_idx(path)
    one_line_error(excinfo, str(path))


def test_not_gzip_at_all(tmp_path):
    path = tmp_path / "fake.gz"
    path.write_bytes(b"definitely not gzip data")
    with pytest.raises(DataError) as excinfo:
        read_idx(path)
    one_line_error(excinfo, str(path))


@pytest.mark.parametrize("data", [b"", b"\x00\x00", b"\x00\x00\x08\x03\x00\x00\x00\x01"])
def test_short_header(tmp_path, data):
    path = tmp_path / "short"
    path.write_bytes(data)
    with pytest.raises(DataError) as excinfo:
        read_idx(path)
    one_line_error(excinfo, str(path))


def test_missing_file(tmp_path):
    path = tmp_path / "nope.gz"
    with pytest.raises(DataError) as excinfo:
        read_idx(path)
    one_line_error(excinfo, str(path), "no such file")


@pytest.mark.parametrize(
    "arr", [np.array([0.5]), np.array([256]), np.array([-1]), np.zeros((1, 1, 1, 1, 1))]
)
def test_write_rejects_unrepresentable(tmp_path, arr):
    with pytest.raises(DataError):
        write_idx(tmp_path / "x", arr)


def test_write_accepts_small_ints(tmp_path):
    write_idx(tmp_path / "x", np.array([0, 9, 255], dtype=np.int64))
    np.testing.assert_array_equal(read_idx(tmp_path / "x"), [0, 9, 255])
