import os
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest

from learning.datasets import DATASETS, Dataset, load_dataset, subset
from learning.errors import ConfigError, DataError
from learning.idx import write_idx

FASHION_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip

# BGR pixels as cv2.imwrite expects them, keyed by class folder name
COLOURS_BGR = {"blue": (255, 0, 0), "green": (0, 255, 0), "red": (0, 0, 255)}


def one_line_error(excinfo: pytest.ExceptionInfo, *needles: str) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg, msg
    return msg


# --------------------------------------------------------------------------- fixture builders


def make_idx_dir(root: Path, gz: bool, n_train: int = 12, n_test: int = 5) -> dict:
    rng = np.random.default_rng(1)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 6, 5), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 4, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 6, 5), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 4, n_test, dtype=np.uint8),
    }
    arrays["train-labels-idx1-ubyte"][0] = 3  # make the class count predictable
    root.mkdir(parents=True, exist_ok=True)
    for stem, arr in arrays.items():
        write_idx(root / (stem + (".gz" if gz else "")), arr)
    return arrays


def write_cifar_batch(path: Path, images: np.ndarray, labels: list[int]) -> None:
    """images: (N, 32, 32, 3) RGB -> the b'data' row layout of the CIFAR-10 python version."""
    data = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    batch = {b"batch_label": b"x", b"labels": labels, b"data": data, b"filenames": []}
    with path.open("wb") as f:
        pickle.dump(batch, f, protocol=2)


def make_cifar_dir(root: Path, meta: bool = True) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(1, 6):
        images = np.zeros((2, 32, 32, 3), dtype=np.uint8)
        images[:, :, :, 0] = 10 * i  # R
        images[:, :, :, 1] = 100  # G
        images[:, :, :, 2] = 200  # B
        images[:, 0, 1, :] = (1, 2, 3)  # one distinctive pixel at row 0, column 1
        write_cifar_batch(root / f"data_batch_{i}", images, [i - 1, i + 4])
    write_cifar_batch(root / "test_batch", np.full((3, 32, 32, 3), 7, np.uint8), [0, 1, 9])
    if meta:
        names = [f"c{i}".encode() for i in range(10)]
        with (root / "batches.meta").open("wb") as f:
            pickle.dump({b"label_names": names, b"num_vis": 3072}, f, protocol=2)


def make_image_folder(root: Path, split: bool, per_class: int = 5) -> None:
    for name, bgr in COLOURS_BGR.items():
        dirs = [root / "train" / name, root / "test" / name] if split else [root / name]
        for d in dirs:
            d.mkdir(parents=True)
            for i in range(per_class):
                img = np.zeros((8, 10, 3), dtype=np.uint8)
                img[:] = bgr
                cv2.imwrite(str(d / f"{i}.png"), img)
            (d / "notes.txt").write_text("ignored")


# --------------------------------------------------------------------------- happy paths


def check_dataset(ds: Dataset) -> None:
    assert ds.x_train.dtype == np.uint8 and ds.x_test.dtype == np.uint8
    assert ds.y_train.dtype == np.int64 and ds.y_test.dtype == np.int64
    assert ds.x_train.ndim == 4 and ds.x_train.shape[1:] == ds.x_test.shape[1:]
    assert ds.input_shape == ds.x_train.shape[1:]
    assert len(ds.x_train) == len(ds.y_train) and len(ds.x_test) == len(ds.y_test)
    for y in (ds.y_train, ds.y_test):
        assert y.min() >= 0 and y.max() < ds.num_classes
    assert not ds.x_train.flags.writeable  # the cached copy is shared


def test_fashion_mnist_vendored():
    ds = load_dataset("fashion-mnist")
    check_dataset(ds)
    assert ds.x_train.shape == (60000, 28, 28, 1)
    assert ds.x_test.shape == (10000, 28, 28, 1)
    assert ds.input_shape == (28, 28, 1)
    assert ds.num_classes == 10
    assert ds.class_names == FASHION_NAMES
    assert np.bincount(ds.y_train).tolist() == [6000] * 10
    assert np.bincount(ds.y_test).tolist() == [1000] * 10
    assert load_dataset("fashion-mnist") is ds  # cached per process
    assert load_dataset("fashion-mnist", image_size=64, color="rgb") is ds


@pytest.mark.parametrize("gz", [False, True])
def test_idx_dir(tmp_path, gz):
    arrays = make_idx_dir(tmp_path / "d", gz)
    ds = load_dataset("idx", str(tmp_path / "d"))
    check_dataset(ds)
    assert ds.name == "idx"
    assert ds.input_shape == (6, 5, 1)
    assert ds.class_names == ("0", "1", "2", "3")
    np.testing.assert_array_equal(ds.x_train[..., 0], arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(ds.y_test, arrays["t10k-labels-idx1-ubyte"])


def test_npz(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "d.npz"
    x_train = rng.integers(0, 256, (10, 4, 4, 3), dtype=np.uint8)
    np.savez(
        path,
        x_train=x_train,
        y_train=np.arange(10) % 3,
        x_test=rng.integers(0, 256, (4, 4, 4, 3)),  # int64 pixels are accepted and cast
        y_test=np.array([[0], [1], [2], [2]]),  # Keras-style (N, 1) labels
        class_names=np.array(["a", "b", "c", "d"]),
    )
    ds = load_dataset("npz", str(path))
    check_dataset(ds)
    assert ds.input_shape == (4, 4, 3)
    assert ds.class_names == ("a", "b", "c", "d")
    assert ds.y_test.tolist() == [0, 1, 2, 2]
    np.testing.assert_array_equal(ds.x_train, x_train)


def test_npz_grey_images_gain_channel(tmp_path):
    path = tmp_path / "g.npz"
    np.savez(path, x_train=np.zeros((3, 5, 5), np.uint8), y_train=[0, 1, 1],
             x_test=np.zeros((1, 5, 5), np.uint8), y_test=[1])  # fmt: skip
    ds = load_dataset("npz", str(path))
    assert ds.x_train.shape == (3, 5, 5, 1)
    assert ds.class_names == ("0", "1")


@pytest.mark.parametrize("meta", [True, False])
def test_cifar10(tmp_path, meta):
    make_cifar_dir(tmp_path / "cifar-10-batches-py", meta=meta)
    ds = load_dataset("cifar10", str(tmp_path / "cifar-10-batches-py"))
    check_dataset(ds)
    assert ds.x_train.shape == (10, 32, 32, 3)
    assert ds.x_test.shape == (3, 32, 32, 3)
    assert ds.y_train.tolist() == [0, 5, 1, 6, 2, 7, 3, 8, 4, 9]
    assert ds.y_test.tolist() == [0, 1, 9]
    # channel order R, G, B and batch order 1..5 preserved
    assert ds.x_train[0, 5, 5].tolist() == [10, 100, 200]
    assert ds.x_train[9, 5, 5].tolist() == [50, 100, 200]
    assert ds.x_train[0, 0, 1].tolist() == [1, 2, 3]  # row-major: (row 0, column 1)
    assert ds.x_train[0, 1, 0].tolist() == [10, 100, 200]
    if meta:
        assert ds.class_names == tuple(f"c{i}" for i in range(10))
    else:
        assert ds.class_names[0] == "airplane" and ds.num_classes == 10


def test_image_folder_rgb_with_split(tmp_path):
    make_image_folder(tmp_path / "imgs", split=True, per_class=2)
    ds = load_dataset("image-folder", str(tmp_path / "imgs"), image_size=4, color="rgb")
    check_dataset(ds)
    assert ds.class_names == ("blue", "green", "red")
    assert ds.x_train.shape == (6, 4, 4, 3) and ds.x_test.shape == (6, 4, 4, 3)
    assert ds.y_train.tolist() == [0, 0, 1, 1, 2, 2]
    assert ds.x_train[0, 0, 0].tolist() == [0, 0, 255]  # blue, now in RGB order
    assert ds.x_train[4, 3, 3].tolist() == [255, 0, 0]  # red
    assert ds.x_test[2, 1, 2].tolist() == [0, 255, 0]  # green


def test_image_folder_grey_auto_split(tmp_path):
    make_image_folder(tmp_path / "imgs", split=False, per_class=5)
    ds = load_dataset("image-folder", str(tmp_path / "imgs"), image_size=6, color="grey")
    check_dataset(ds)
    assert ds.x_train.shape == (12, 6, 6, 1) and ds.x_test.shape == (3, 6, 6, 1)
    assert ds.y_test.tolist() == [0, 1, 2]  # stratified: one of five per class
    grey = {0: 29, 1: 150, 2: 76}  # BT.601 luma of pure blue, green, red
    for x, y in zip(ds.x_train, ds.y_train, strict=True):
        assert abs(int(x[0, 0, 0]) - grey[int(y)]) <= 1
    # deterministic: a fresh load (cache bypassed by another size) picks the same split
    again = load_dataset("image-folder", str(tmp_path / "imgs"), image_size=5, color="grey")
    np.testing.assert_array_equal(again.y_test, ds.y_test)
    assert again.input_shape == (5, 5, 1)


def test_cache_keyed_by_arguments(tmp_path):
    make_image_folder(tmp_path / "imgs", split=True, per_class=1)
    a = load_dataset("image-folder", str(tmp_path / "imgs"), image_size=4, color="rgb")
    assert load_dataset("image-folder", str(tmp_path / "imgs"), 4, "rgb") is a
    assert load_dataset("image-folder", str(tmp_path / "imgs"), 4, "grey") is not a


def test_registry_names():
    assert sorted(DATASETS) == [
        "cifar10",
        "client-folders",
        "fashion-mnist",
        "idx",
        "image-folder",
        "npz",
    ]


# --------------------------------------------------------------------------- subset


def test_subset_deterministic_and_sized():
    ds = load_dataset("fashion-mnist")
    a = subset(ds, 500, 100, seed=3)
    b = subset(ds, 500, 100, seed=3)
    c = subset(ds, 500, 100, seed=4)
    assert a.x_train.shape == (500, 28, 28, 1) and a.y_test.shape == (100,)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert not np.array_equal(a.x_train, c.x_train)
    assert a.class_names == ds.class_names and a.num_classes == 10
    full = subset(ds, 0, 0, seed=0)
    assert full.x_train.shape[0] == 60000 and full.x_test.shape[0] == 10000


@pytest.mark.parametrize(
    ("train", "test", "key"),
    [(60001, 0, "train-size"), (0, -1, "test-size"), (1.5, 0, "train")],
)
def test_subset_rejects_bad_sizes(train, test, key):
    with pytest.raises(ConfigError) as excinfo:
        subset(load_dataset("fashion-mnist"), train, test, seed=0)
    one_line_error(excinfo, key)


# --------------------------------------------------------------------------- errors


def test_unknown_name():
    with pytest.raises(ConfigError) as excinfo:
        load_dataset("mnistt")
    one_line_error(
        excinfo,
        "unknown dataset 'mnistt'",
        "['cifar10', 'client-folders', 'fashion-mnist', 'idx', 'image-folder', 'npz']",
    )


@pytest.mark.parametrize(
    ("kwargs", "key"), [({"color": "gray"}, "color"), ({"image_size": 0}, "image-size")]
)
def test_bad_options(kwargs, key):
    with pytest.raises(ConfigError) as excinfo:
        load_dataset("fashion-mnist", **kwargs)
    one_line_error(excinfo, key)


@pytest.mark.parametrize("name", ["npz", "idx", "cifar10", "image-folder", "client-folders"])
def test_missing_data_path(name):
    with pytest.raises(DataError) as excinfo:
        load_dataset(name)
    one_line_error(excinfo, f"dataset '{name}' needs data-path", "--set data-path=")


def test_missing_npz_path_message():
    with pytest.raises(DataError) as excinfo:
        load_dataset("npz")
    assert str(excinfo.value) == (
        "dataset 'npz' needs data-path: set --set data-path=/path/to/file.npz"
    )


@pytest.mark.parametrize("name", ["npz", "idx", "cifar10", "image-folder", "client-folders"])
def test_nonexistent_path(tmp_path, name):
    with pytest.raises(DataError) as excinfo:
        load_dataset(name, str(tmp_path / "nowhere"))
    one_line_error(excinfo, str(tmp_path / "nowhere"), "does not exist")


def test_idx_missing_file(tmp_path):
    make_idx_dir(tmp_path, gz=True)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(DataError) as excinfo:
        load_dataset("idx", str(tmp_path))
    one_line_error(excinfo, "t10k-labels-idx1-ubyte")


def test_idx_bad_magic(tmp_path):
    make_idx_dir(tmp_path, gz=True)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros(3, np.uint8))
    with pytest.raises(DataError) as excinfo:
        load_dataset("idx", str(tmp_path))
    one_line_error(
        excinfo,
        "train-images-idx3-ubyte.gz",
        "bad magic number 0x0801 (expected 0x0803)",
    )


def test_idx_truncated(tmp_path):
    make_idx_dir(tmp_path, gz=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DataError) as excinfo:
        load_dataset("idx", str(tmp_path))
    one_line_error(excinfo, str(path), "truncated")


def test_idx_count_mismatch(tmp_path):
    make_idx_dir(tmp_path, gz=False)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(11, np.uint8))
    with pytest.raises(DataError) as excinfo:
        load_dataset("idx", str(tmp_path))
    one_line_error(excinfo, str(tmp_path), "12 images but 11 labels")


def save_npz(path: Path, **overrides) -> Path:
    arrays = {
        "x_train": np.zeros((4, 3, 3), np.uint8),
        "y_train": np.array([0, 1, 0, 1]),
        "x_test": np.zeros((2, 3, 3), np.uint8),
        "y_test": np.array([1, 0]),
    }
    arrays.update(overrides)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def test_npz_missing_key(tmp_path):
    path = save_npz(tmp_path / "d.npz", y_test=None)
    with pytest.raises(DataError) as excinfo:
        load_dataset("npz", str(path))
    one_line_error(excinfo, str(path), "'y_test'")


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"y_train": np.array([0, 1, 0])}, "4 images but 3 labels"),
        ({"y_test": np.array([1, -1])}, "label -1"),
        ({"x_train": np.zeros((4, 3, 3), np.float32)}, "float32"),
        ({"x_train": np.zeros((4, 3, 3, 2), np.uint8)}, "(4, 3, 3, 2)"),
        ({"x_test": np.zeros((2, 4, 4), np.uint8)}, "same image shape"),
        ({"y_train": np.array([0.0, 1.0, 0.0, 1.0])}, "integers"),
        ({"class_names": np.array(["a"])}, "label 1 is outside [0, 1)"),
    ],
)
def test_npz_invalid_contents(tmp_path, overrides, needle):
    path = save_npz(tmp_path / "d.npz", **overrides)
    with pytest.raises(DataError) as excinfo:
        load_dataset("npz", str(path))
    one_line_error(excinfo, str(path), needle)


def test_npz_not_an_archive(tmp_path):
    path = tmp_path / "d.npz"
    path.write_bytes(b"this is not a zip file")
    with pytest.raises(DataError) as excinfo:
        load_dataset("npz", str(path))
    one_line_error(excinfo, str(path))


def test_cifar_missing_batch(tmp_path):
    make_cifar_dir(tmp_path)
    os.remove(tmp_path / "data_batch_3")
    with pytest.raises(DataError) as excinfo:
        load_dataset("cifar10", str(tmp_path))
    one_line_error(excinfo, "data_batch_3")


def test_cifar_refuses_code_in_pickle(tmp_path):
    make_cifar_dir(tmp_path)
    with (tmp_path / "test_batch").open("wb") as f:
        pickle.dump({b"data": os.getcwd}, f)  # any non-array global is refused
    with pytest.raises(DataError) as excinfo:
        load_dataset("cifar10", str(tmp_path))
    one_line_error(excinfo, "test_batch", "refusing")


def test_cifar_bad_data_shape(tmp_path):
    make_cifar_dir(tmp_path)
    with (tmp_path / "test_batch").open("wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(DataError) as excinfo:
        load_dataset("cifar10", str(tmp_path))
    one_line_error(excinfo, "test_batch", "(2, 100)")


def test_cifar_label_count_mismatch(tmp_path):
    make_cifar_dir(tmp_path)
    write_cifar_batch(tmp_path / "data_batch_2", np.zeros((2, 32, 32, 3), np.uint8), [1])
    with pytest.raises(DataError) as excinfo:
        load_dataset("cifar10", str(tmp_path))
    one_line_error(excinfo, "data_batch_2", "2 images but 1 labels")


def test_image_folder_empty_class(tmp_path):
    make_image_folder(tmp_path, split=False, per_class=2)
    (tmp_path / "zebra").mkdir()
    with pytest.raises(DataError) as excinfo:
        load_dataset("image-folder", str(tmp_path))
    one_line_error(excinfo, str(tmp_path / "zebra"), "no images")


def test_image_folder_unreadable_image(tmp_path):
    make_image_folder(tmp_path, split=True, per_class=1)
    bad = tmp_path / "test" / "red" / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(DataError) as excinfo:
        load_dataset("image-folder", str(tmp_path))
    one_line_error(excinfo, str(bad))


def test_image_folder_no_classes(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(DataError) as excinfo:
        load_dataset("image-folder", str(tmp_path))
    one_line_error(excinfo, "no class sub-folders")


def test_image_folder_half_split(tmp_path):
    make_image_folder(tmp_path, split=True, per_class=1)
    for f in (tmp_path / "test").rglob("*"):
        if f.is_file():
            f.unlink()
    for d in sorted((tmp_path / "test").rglob("*"), reverse=True):
        d.rmdir()
    (tmp_path / "test").rmdir()
    with pytest.raises(DataError) as excinfo:
        load_dataset("image-folder", str(tmp_path))
    one_line_error(excinfo, "train/", "test/")


def test_image_folder_test_class_unknown(tmp_path):
    make_image_folder(tmp_path, split=True, per_class=1)
    (tmp_path / "test" / "zebra").mkdir()
    cv2.imwrite(str(tmp_path / "test" / "zebra" / "z.png"), np.zeros((4, 4), np.uint8))
    with pytest.raises(DataError) as excinfo:
        load_dataset("image-folder", str(tmp_path))
    one_line_error(excinfo, "['zebra']")


def test_subset_rejects_bad_seed():
    with pytest.raises(ConfigError) as excinfo:
        subset(load_dataset("fashion-mnist"), 10, 10, seed=-1)
    one_line_error(excinfo, "seed", "-1")
