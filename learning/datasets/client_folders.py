"""One folder per client, already partitioned: DATA/<client>/train/<class>/* (and test/).

The folders are the split, so nothing splits this data again: every training example
carries the index of its client folder (`Dataset.owners`, sorted folder order) and the
`natural` partitioner groups by it. Class names are the union over all clients, sorted,
so a label id means the same class on every client whichever classes it holds. The
central test set is DATA/_test/<class>/* when present, else the union of the clients'
test/ folders. Images are decoded exactly as image-folder decodes them (its helpers).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from learning.datasets.common import Dataset, make, require_path
from learning.datasets.image_folder import class_dirs, image_files, read_images
from learning.errors import DataError

CENTRAL_TEST = "_test"  # DATA/_test/<class>/*: the central test set, not a client
EXAMPLE = "/path/to/clients"


def client_dirs(path: str) -> list[Path]:
    """The client folders under `path`, sorted by name: client k is the k-th.

    Hidden folders are skipped; `_test` is the central test set; any other name that
    starts with "_" is refused, so a folder is never silently left out of the clients."""
    root = require_path("client-folders", path, EXAMPLE)
    if not root.is_dir():
        raise DataError(
            f"dataset 'client-folders': {root} is not a directory; point data-path at a "
            "folder holding one sub-folder per client (<client>/train/<class>/...)"
        )
    dirs = [d for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    reserved = [d.name for d in dirs if d.name.startswith("_") and d.name != CENTRAL_TEST]
    if reserved:
        raise DataError(
            f"client folders {root}: {reserved[0]!r} starts with '_', which is reserved "
            f"(only {CENTRAL_TEST}/ is known: the central test set); rename or remove it"
        )
    clients = [d for d in dirs if not d.name.startswith("_")]
    if not clients:
        raise DataError(
            f"client folders {root} holds no client folders; create one folder per client "
            "with its images in <client>/train/<class>/"
        )
    return clients


def client_folder_count(path: str) -> int:
    """How many clients a client-folders tree holds (what num-clients must be)."""
    return len(client_dirs(path))


def _classes(folder: Path, what: str) -> dict[str, Path]:
    classes = class_dirs(folder)
    if not classes:
        raise DataError(
            f"{what} {folder} holds no class folders; put its images in "
            f"{folder}/<class>/ or remove it"
        )
    return classes


def _items(classes: dict[str, Path], label: dict[str, int], where: Path) -> list[tuple[Path, int]]:
    """(file, label id) of every image under `classes`; a class no client trains on is refused."""
    unknown = sorted(set(classes) - set(label))
    if unknown:
        raise DataError(
            f"{where} has classes {unknown} that no client has in train/; every test class "
            "needs training images"
        )
    return [(f, label[c]) for c in sorted(classes) for f in image_files(classes[c])]


def client_folders(path: str, image_size: int, color: str) -> Dataset:
    """Every client's train/ images in client order (owners = client index), the class
    union as labels, and the central test set (_test/, else the clients' test/)."""
    clients = client_dirs(path)
    root = clients[0].parent
    trains = []
    for c in clients:
        if not (c / "train").is_dir():
            raise DataError(
                f"client folder {c} has no train/ folder; data-path must hold one folder "
                f"per client, each with train/<class>/ images (test/<class>/ optional)"
            )
        trains.append(_classes(c / "train", f"client {c.name!r}: training folder"))
    names = sorted(set().union(*trains))
    label = {name: i for i, name in enumerate(names)}
    train: list[tuple[Path, int]] = []
    owners: list[int] = []
    for k, (c, classes) in enumerate(zip(clients, trains, strict=True)):
        got = _items(classes, label, c / "train")
        train += got
        owners += [k] * len(got)
    central = root / CENTRAL_TEST
    if central.exists():
        if not central.is_dir():
            raise DataError(f"{central} is not a folder; make it _test/<class>/ or remove it")
        test = _items(_classes(central, "central test folder"), label, central)
    else:
        test = []
        for c in clients:
            if (c / "test").is_dir():
                classes = _classes(c / "test", f"client {c.name!r}: test folder")
                test += _items(classes, label, c / "test")
    if not test:
        raise DataError(
            f"client folders {root} hold no test images; add {root / CENTRAL_TEST}/<class>/ "
            "(the central test set) or <client>/test/<class>/ folders"
        )
    x_train, y_train = read_images(train, image_size, color)
    x_test, y_test = read_images(test, image_size, color)
    ds = make(
        "client-folders", x_train, y_train, x_test, y_test, tuple(names), f"client folders {root}"
    )
    who = np.asarray(owners, dtype=np.int64)
    who.setflags(write=False)
    return dataclasses.replace(ds, owners=who)
