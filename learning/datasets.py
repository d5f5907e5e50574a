"""Load image-classification datasets into one uint8 in-memory form.

Images stay uint8 (N, H, W, C): a 100k-client simulation keeps one copy per worker and
slices it by index, so converting to float here would multiply memory by four.
Normalisation happens later, in the client.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import json
import os
import pickle
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from learning.config_schema import check_value
from learning.errors import ConfigError, DataError
from learning.idx import read_idx

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
TEST_FRACTION = 0.2  # image folders without a train/test split
SPLIT_SEED = 0


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test split held in memory; arrays are read-only because loads are cached."""

    name: str
    x_train: np.ndarray  # (N, H, W, C) uint8, C = 1 (grey) or 3 (RGB)
    y_train: np.ndarray  # (N,) int64 labels in [0, num_classes)
    x_test: np.ndarray  # (M, H, W, C) uint8
    y_test: np.ndarray  # (M,) int64
    class_names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        h, w, c = self.x_train.shape[1:]
        return (int(h), int(w), int(c))


# --------------------------------------------------------------------------- validation


def _images(x: object, where: str) -> np.ndarray:
    """Coerce to (N, H, W, C) uint8, adding a channel axis to (N, H, W)."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., np.newaxis]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise DataError(
            f"{where}: images have shape {x.shape}, expected (N, H, W) or (N, H, W, C) with "
            "C = 1 or 3; reshape the array"
        )
    if x.dtype != np.uint8:
        if x.dtype.kind not in "iu" or (x.size and (x.min() < 0 or x.max() > 255)):
            raise DataError(
                f"{where}: images have dtype {x.dtype}, expected uint8 pixels in 0..255; "
                "store them as uint8"
            )
        x = x.astype(np.uint8)
    return np.ascontiguousarray(x)


def _labels(y: object, where: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{where}: labels have shape {y.shape}, expected (N,); flatten them")
    if y.dtype.kind not in "iub":
        raise DataError(
            f"{where}: labels have dtype {y.dtype}, expected integers; store class indices"
        )
    return y.astype(np.int64)


def _make(
    name: str,
    x_train: object,
    y_train: object,
    x_test: object,
    y_test: object,
    class_names: tuple[str, ...] | None,
    where: str,
) -> Dataset:
    """Validate and freeze a split; class names default to "0".."K-1" from the largest label."""
    xs = [_images(x_train, f"{where} (train)"), _images(x_test, f"{where} (test)")]
    ys = [_labels(y_train, f"{where} (train)"), _labels(y_test, f"{where} (test)")]
    for split, x, y in zip(("train", "test"), xs, ys, strict=True):
        if len(x) != len(y):
            raise DataError(
                f"{where}: {split} has {len(x)} images but {len(y)} labels; the counts must match"
            )
    if xs[0].shape[1:] != xs[1].shape[1:]:
        raise DataError(
            f"{where}: train images are {xs[0].shape[1:]} but test images are "
            f"{xs[1].shape[1:]}; both splits need the same image shape"
        )
    if len(xs[0]) == 0:
        raise DataError(f"{where}: the training split is empty; provide at least one example")
    if class_names is None:
        top = max(int(y.max()) if y.size else -1 for y in ys)
        class_names = tuple(str(i) for i in range(top + 1))
    for split, y in zip(("train", "test"), ys, strict=True):
        if y.size and (y.min() < 0 or y.max() >= len(class_names)):
            bad = int(y.min()) if y.min() < 0 else int(y.max())
            raise DataError(
                f"{where}: {split} label {bad} is outside [0, {len(class_names)}); "
                "labels must be class indices"
            )
    for a in (*xs, *ys):
        a.setflags(write=False)
    return Dataset(name, xs[0], ys[0], xs[1], ys[1], tuple(class_names))


def _require_path(name: str, path: str, example: str) -> Path:
    if not path:
        raise DataError(f"dataset '{name}' needs data-path: set --set data-path={example}")
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(
            f"dataset '{name}': data-path {p} does not exist; set --set data-path={example}"
        )
    return p


# --------------------------------------------------------------------------- IDX


def _find_idx(directory: Path, stem: str) -> Path:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(
        f"missing IDX file {directory / stem}[.gz]; the directory needs all of "
        f"{', '.join(IDX_FILES)} (optionally .gz)"
    )


def _load_idx_dir(name: str, directory: Path, class_names: tuple[str, ...] | None) -> Dataset:
    if not directory.is_dir():
        raise DataError(
            f"dataset '{name}': {directory} is not a directory; point data-path at the folder "
            "holding the four IDX files"
        )
    files = [_find_idx(directory, stem) for stem in IDX_FILES]
    arrays = [read_idx(f, expected_ndim=3 if "images" in f.name else 1) for f in files]
    return _make(name, *arrays, class_names, where=f"IDX files in {directory}")


def _vendored_fashion_mnist() -> Path:
    """Where the vendored files are: next to this module, else the installed copy.

    Under `flwr run` the app's own copy of this package (a FAB, which carries only
    source files) is imported first; the data then comes from the perennial-fl
    installation (regular or editable) or from PERENNIAL_DATA_DIR.
    """
    here = importlib.resources.files("learning").joinpath("data", "fashion-mnist")
    candidates = [Path(str(here))]
    if os.environ.get("PERENNIAL_DATA_DIR"):
        candidates.insert(0, Path(os.environ["PERENNIAL_DATA_DIR"]))
    try:
        dist = importlib.metadata.distribution("perennial-fl")
        direct = json.loads(dist.read_text("direct_url.json") or "{}")
        if direct.get("dir_info", {}).get("editable") and direct.get("url", "").startswith(
            "file://"
        ):
            source = Path(urllib.parse.unquote(direct["url"][len("file://") :]))
            candidates.append(source / "learning" / "data" / "fashion-mnist")
        candidates.append(Path(str(dist.locate_file("learning/data/fashion-mnist"))))
    except (importlib.metadata.PackageNotFoundError, ValueError, OSError):
        pass
    for directory in candidates:
        if (directory / "train-labels-idx1-ubyte.gz").is_file():
            return directory
    raise DataError(
        "vendored Fashion-MNIST not found (looked in "
        + ", ".join(str(c) for c in candidates)
        + "); reinstall perennial-fl or set PERENNIAL_DATA_DIR"
    )


def _fashion_mnist(path: str, image_size: int, color: str) -> Dataset:
    del path, image_size, color  # vendored and fixed-size
    return _load_idx_dir("fashion-mnist", _vendored_fashion_mnist(), FASHION_MNIST_CLASSES)


def _idx(path: str, image_size: int, color: str) -> Dataset:
    del image_size, color
    return _load_idx_dir("idx", _require_path("idx", path, "/path/to/idx-dir"), None)


# --------------------------------------------------------------------------- npz


def _npz(path: str, image_size: int, color: str) -> Dataset:
    del image_size, color
    p = _require_path("npz", path, "/path/to/file.npz")
    keys = ("x_train", "y_train", "x_test", "y_test")
    try:
        with np.load(p, allow_pickle=False) as data:
            missing = [k for k in keys if k not in data.files]
            if missing:
                raise DataError(
                    f"npz file {p} is missing key(s) {missing} (has {sorted(data.files)}); "
                    f"save it with np.savez(path, {', '.join(f'{k}=...' for k in keys)})"
                )
            arrays = [data[k] for k in keys]
            names = None
            if "class_names" in data.files:
                names = tuple(str(s) for s in np.asarray(data["class_names"]).ravel())
    except DataError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"cannot read npz file {p}: {detail}; is it a NumPy .npz archive?"
        ) from None
    return _make("npz", *arrays, names, where=f"npz file {p}")


# --------------------------------------------------------------------------- CIFAR-10


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickle only plain containers and NumPy arrays: a batch file must not run code."""

    _ALLOWED = frozenset(
        {
            ("_codecs", "encode"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "scalar"),
            ("numpy._core.numeric", "_frombuffer"),
        }
    )

    def find_class(self, module: str, name: str) -> object:
        if module.startswith("numpy.core."):  # pickles written by NumPy 1.x
            module = "numpy._core." + module.removeprefix("numpy.core.")
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    try:
        with path.open("rb") as f:
            obj = _ArrayUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise DataError(
            f"missing CIFAR-10 file {path}; point data-path at the cifar-10-batches-py folder"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"cannot read CIFAR-10 file {path}: {detail}; is it from the CIFAR-10 python "
            "version (cifar-10-batches-py)?"
        ) from None
    if not isinstance(obj, dict):
        raise DataError(
            f"cannot read CIFAR-10 file {path}: expected a pickled dict, got "
            f"{type(obj).__name__}; is it from cifar-10-batches-py?"
        )
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    for key in ("data", "labels"):
        if key not in batch:
            raise DataError(
                f"CIFAR-10 file {path} has no b'{key}' entry (has {sorted(map(str, batch))}); "
                "is it a data batch from cifar-10-batches-py?"
            )
    data = np.asarray(batch["data"])
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(
            f"CIFAR-10 file {path}: b'data' has shape {data.shape}, expected (N, 3072); "
            "is it a data batch from cifar-10-batches-py?"
        )
    labels = np.asarray(batch["labels"])
    if len(labels) != len(data):
        raise DataError(
            f"CIFAR-10 file {path}: {len(data)} images but {len(labels)} labels; "
            "the file is damaged, re-extract it"
        )
    # rows hold the R, G and B planes one after another, each 32x32 row-major
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, labels


def _cifar10(path: str, image_size: int, color: str) -> Dataset:
    del image_size, color
    root = _require_path("cifar10", path, "/path/to/cifar-10-batches-py")
    if not root.is_dir():
        raise DataError(
            f"dataset 'cifar10': {root} is not a directory; point data-path at the extracted "
            "cifar-10-batches-py folder"
        )
    train = [_cifar_batch(root / f"data_batch_{i}") for i in range(1, 6)]
    x_test, y_test = _cifar_batch(root / "test_batch")
    names = CIFAR10_CLASSES
    if (root / "batches.meta").is_file():
        meta = _unpickle(root / "batches.meta")
        if "label_names" in meta:
            names = tuple(
                s.decode() if isinstance(s, bytes) else str(s) for s in meta["label_names"]
            )
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return _make("cifar10", x_train, y_train, x_test, y_test, names, where=f"CIFAR-10 in {root}")


# --------------------------------------------------------------------------- image folder


def _class_dirs(directory: Path) -> dict[str, Path]:
    return {
        d.name: d for d in sorted(directory.iterdir()) if d.is_dir() and not d.name.startswith(".")
    }


def _image_files(directory: Path) -> list[Path]:
    files = sorted(
        f
        for f in directory.iterdir()
        if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise DataError(
            f"class folder {directory} has no images ({', '.join(sorted(IMAGE_SUFFIXES))}); "
            "add images or remove the folder"
        )
    return files


def _read_image(path: Path, image_size: int, color: str) -> np.ndarray:
    import cv2  # imported lazily: only image folders need OpenCV

    flag = cv2.IMREAD_GRAYSCALE if color == "grey" else cv2.IMREAD_COLOR
    img = cv2.imread(str(path), flag)
    if img is None:
        raise DataError(f"cannot decode image {path}; remove it or convert it to PNG/JPEG")
    if img.shape[:2] != (image_size, image_size):
        img = cv2.resize(img, (image_size, image_size), interpolation=cv2.INTER_AREA)
    if color == "rgb":
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    else:
        img = img[..., np.newaxis]
    return img


def _read_split(
    items: list[tuple[Path, int]], image_size: int, color: str
) -> tuple[np.ndarray, np.ndarray]:
    channels = 1 if color == "grey" else 3
    x = np.empty((len(items), image_size, image_size, channels), dtype=np.uint8)
    for i, (f, _) in enumerate(items):
        x[i] = _read_image(f, image_size, color)
    y = np.array([label for _, label in items], dtype=np.int64)
    return x, y


def _split_files(classes: dict[str, Path]) -> tuple[list, list]:
    """Per-class (stratified) split with a fixed seed, so every run sees the same test set."""
    rng = np.random.default_rng(SPLIT_SEED)
    train: list[tuple[Path, int]] = []
    test: list[tuple[Path, int]] = []
    for label, c in enumerate(sorted(classes)):
        files = _image_files(classes[c])
        n_test = min(round(len(files) * TEST_FRACTION), len(files) - 1)
        is_test = np.zeros(len(files), dtype=bool)
        is_test[rng.permutation(len(files))[:n_test]] = True
        for f, t in zip(files, is_test, strict=True):
            (test if t else train).append((f, label))
    return train, test


def _image_folder(path: str, image_size: int, color: str) -> Dataset:
    root = _require_path("image-folder", path, "/path/to/images")
    if not root.is_dir():
        raise DataError(
            f"dataset 'image-folder': {root} is not a directory; point data-path at a folder "
            "with train/ and test/ (or one sub-folder per class)"
        )
    has_train, has_test = (root / "train").is_dir(), (root / "test").is_dir()
    if has_train != has_test:
        raise DataError(
            f"image folder {root} has {'train/' if has_train else 'test/'} but not "
            f"{'test/' if has_train else 'train/'}; add it, or put class folders directly "
            "under the root to split automatically"
        )
    classes = _class_dirs(root / "train" if has_train else root)
    names = sorted(classes)
    if not names:
        raise DataError(
            f"image folder {root} has no class sub-folders; create one folder per class "
            "holding its images"
        )
    if has_train:
        test_classes = _class_dirs(root / "test")
        extra = sorted(set(test_classes) - set(classes))
        if extra:
            raise DataError(
                f"image folder {root / 'test'} has classes {extra} missing from "
                f"{root / 'train'}; every test class needs training images"
            )
        train = [(f, names.index(c)) for c in names for f in _image_files(classes[c])]
        test = [
            (f, names.index(c)) for c in sorted(test_classes) for f in _image_files(test_classes[c])
        ]
    else:
        train, test = _split_files(classes)
    x_train, y_train = _read_split(train, image_size, color)
    x_test, y_test = _read_split(test, image_size, color)
    return _make(
        "image-folder",
        x_train,
        y_train,
        x_test,
        y_test,
        tuple(names),
        where=f"image folder {root}",
    )


# --------------------------------------------------------------------------- registry

Loader = Callable[[str, int, str], Dataset]

DATASETS: dict[str, Loader] = {
    "cifar10": _cifar10,
    "fashion-mnist": _fashion_mnist,
    "idx": _idx,
    "image-folder": _image_folder,
    "npz": _npz,
}

_CACHE: dict[tuple[str, str, int, str], Dataset] = {}


def load_dataset(name: str, path: str = "", image_size: int = 32, color: str = "grey") -> Dataset:
    """Load (once per process) a dataset by registry name.

    ``image_size`` and ``color`` only affect ``image-folder``; the other formats have a fixed
    shape, so they are left out of the cache key to avoid holding duplicate copies.
    """
    loader = DATASETS.get(name)
    if loader is None:
        raise ConfigError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}")
    color = check_value("color", color)  # the config's rules (config_schema.py)
    image_size = check_value("image-size", image_size)
    path = str(path) if path else ""
    where = str(Path(path).expanduser().resolve()) if path and name != "fashion-mnist" else ""
    shaped = name == "image-folder"
    key = (name, where, image_size if shaped else 0, color if shaped else "")
    if key not in _CACHE:
        _CACHE[key] = loader(path, image_size, color)
    return _CACHE[key]


def subset(ds: Dataset, train_size: int, test_size: int, seed: int) -> Dataset:
    """A deterministic random subset (original order kept) for fast tests and small runs.

    A size of 0 keeps the whole split.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
    rng = np.random.default_rng(seed)
    picks = []
    for key, size, total in (
        ("train-size", train_size, len(ds.y_train)),
        ("test-size", test_size, len(ds.y_test)),
    ):
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 0:
            raise ConfigError(f"{key} must be an integer >= 0 (0 = all), got {size!r}")
        if size > total:
            raise ConfigError(
                f"{key} {size} exceeds the {total} examples of '{ds.name}'; "
                "lower it or set 0 to keep all"
            )
        if size == 0 or size == total:
            picks.append(None)
        else:
            picks.append(np.sort(rng.choice(total, size=int(size), replace=False)))

    def take(a: np.ndarray, idx: np.ndarray | None) -> np.ndarray:
        if idx is None:
            return a
        out = a[idx]
        out.setflags(write=False)
        return out

    return Dataset(
        ds.name,
        take(ds.x_train, picks[0]),
        take(ds.y_train, picks[0]),
        take(ds.x_test, picks[1]),
        take(ds.y_test, picks[1]),
        ds.class_names,
    )
