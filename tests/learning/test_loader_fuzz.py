"""Malformed files of every format: a DataError (one line), never another exception."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from learning import datasets
from learning.datasets import load_dataset
from learning.errors import PerennialError

FUZZ = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _check(name: str, path) -> None:
    datasets._CACHE.clear()
    try:
        load_dataset(name, str(path))
    except PerennialError as exc:
        assert "\n" not in str(exc)


@FUZZ
@given(blob=st.binary(max_size=300), gz=st.booleans())
def test_idx_garbage(tmp_path_factory, blob, gz):
    d = tmp_path_factory.mktemp("idx")
    for stem in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        if gz:
            (d / f"{stem}.gz").write_bytes(gzip.compress(blob))
        else:
            (d / stem).write_bytes(blob)
    _check("idx", d)


@FUZZ
@given(
    blob=st.binary(max_size=300),
    head=st.sampled_from([b"", b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY\x01\x00"]),
)
def test_npz_garbage(tmp_path_factory, blob, head):
    f = tmp_path_factory.mktemp("npz") / "d.npz"
    f.write_bytes(head + blob)  # zip and .npy magic too, so the fuzz reaches their parsers
    _check("npz", f)


@FUZZ
@given(
    shape=st.lists(st.integers(0, 4), min_size=1, max_size=4),
    labels=st.lists(st.integers(-3, 12), max_size=5),
)
def test_npz_wrong_shapes(tmp_path_factory, shape, labels):
    f = tmp_path_factory.mktemp("npz") / "d.npz"
    x = np.zeros(shape, np.uint8)
    y = np.array(labels, np.int64)
    np.savez(f, x_train=x, y_train=y, x_test=x, y_test=y)
    _check("npz", f)


@FUZZ
@given(
    payload=st.one_of(
        st.binary(max_size=200),
        st.dictionaries(
            st.sampled_from([b"data", b"labels", b"x"]),
            st.one_of(
                st.integers(), st.lists(st.integers(0, 300), max_size=4), st.text(max_size=5)
            ),
            max_size=3,
        ),
    )
)
def test_cifar_garbage(tmp_path_factory, payload):
    d = tmp_path_factory.mktemp("cifar")
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        blob = payload if isinstance(payload, bytes) else pickle.dumps(payload)
        (d / name).write_bytes(blob)
    _check("cifar10", d)


@FUZZ
@given(blob=st.binary(max_size=200))
def test_image_folder_garbage(tmp_path_factory, blob):
    d = tmp_path_factory.mktemp("img")
    for split in ("train", "test"):
        for cls in ("a", "b"):
            (d / split / cls).mkdir(parents=True)
            (d / split / cls / "x.png").write_bytes(blob)
    _check("image-folder", d)


@FUZZ
@given(blob=st.binary(max_size=200))
def test_client_folders_garbage(tmp_path_factory, blob):
    d = tmp_path_factory.mktemp("clients")
    for folder in ("c0/train/a", "c1/train/b", "c1/test/a", "_test/b"):
        (d / folder).mkdir(parents=True)
        (d / folder / "x.png").write_bytes(blob)
    _check("client-folders", d)


@pytest.mark.parametrize("name", ["idx", "npz", "cifar10", "image-folder", "client-folders"])
def test_missing_path(tmp_path, name):
    _check(name, tmp_path / "does-not-exist")


def _valid_npz(path) -> bytes:
    x = np.zeros((4, 2, 2), np.uint8)
    y = np.arange(4, dtype=np.int64) % 2
    np.savez(path, x_train=x, y_train=y, x_test=x, y_test=y)
    return path.read_bytes()


@pytest.mark.parametrize(
    "damage",
    [
        lambda good: b"PK\x03\x04" + b"\x00" * 40,  # a zip header, then nothing of a zip
        lambda good: b"PK\x05\x06" + b"\xff" * 18,  # an end-of-archive record that lies
        lambda good: good[: len(good) // 2],  # truncated mid-archive
        lambda good: good[:60] + bytes(b ^ 0xFF for b in good[60:200]) + good[200:],  # bad CRC
        lambda good: b"not a zip at all",
    ],
)
def test_corrupt_npz_is_one_line_error(tmp_path, damage):
    f = tmp_path / "d.npz"
    f.write_bytes(damage(_valid_npz(f)))
    datasets._CACHE.clear()
    with pytest.raises(PerennialError) as info:
        load_dataset("npz", str(f))
    assert "\n" not in str(info.value) and str(f) in str(info.value)


def test_truncated_idx_is_one_line_error(tmp_path):
    idx = tmp_path / "idx"
    idx.mkdir()
    header = b"\x00\x00\x08\x03" + (10).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    for stem in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"):
        (idx / f"{stem}.gz").write_bytes(gzip.compress(header + b"\x00" * 100)[:-6])
    for stem in ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"):
        (idx / stem).write_bytes(b"\x00\x00\x08\x01" + (10).to_bytes(4, "big") + b"\x00" * 3)
    datasets._CACHE.clear()
    with pytest.raises(PerennialError) as info:
        load_dataset("idx", str(idx))
    assert "\n" not in str(info.value)
