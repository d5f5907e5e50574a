"""`dataset = "client-folders"`: the loader (class union, label ids, owners, the _test
override, image-size/color as image-folder decodes them, one-line errors), the config it
implies, and that client k's arrays are exactly folder k's images (plain and continual)."""

from __future__ import annotations

import numpy as np
import pytest
from client_tree import mark, owners_of, stack, write_split, write_tree

from learning.config import ExperimentConfig
from learning.datasets import load_dataset
from learning.errors import ConfigError, DataError
from learning.federated_data import client_shard, partitions_for, task_shard
from learning.partition import partition

# Sorted client order is bob (0), carol (1), dave (2), whatever the creation order.
CLIENTS = {
    "dave": {"cat": 2, "owl": 1},
    "bob": {"cat": 3, "dog": 2},
    "carol": {"dog": 4},
}
TESTS = {"bob": {"cat": 1, "dog": 1}, "dave": {"owl": 2}}


def one_line(excinfo: pytest.ExceptionInfo, *needles: str) -> None:
    msg = str(excinfo.value)
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg, msg


def config(root, **more) -> ExperimentConfig:
    values = {"dataset": "client-folders", "data-path": str(root), "image-size": 8}
    return ExperimentConfig.from_flat({**values, **more})


def test_class_union_label_ids_owners_and_client_tests(tmp_path):
    written = write_tree(tmp_path, CLIENTS, TESTS)
    ds = load_dataset("client-folders", str(tmp_path), image_size=8, color="grey")
    assert ds.class_names == ("cat", "dog", "owl")  # union over clients, sorted
    x, y = stack(written["bob/train"] + written["carol/train"] + written["dave/train"])
    np.testing.assert_array_equal(ds.x_train, x)
    np.testing.assert_array_equal(ds.y_train, y)
    np.testing.assert_array_equal(ds.owners, [0] * 5 + [1] * 4 + [2] * 3)
    x, y = stack(written["bob/test"] + written["dave/test"])  # union of the clients' tests
    np.testing.assert_array_equal(ds.x_test, x)
    np.testing.assert_array_equal(ds.y_test, y)
    assert not ds.owners.flags.writeable


def test_central_test_folder_replaces_client_tests(tmp_path):
    written = write_tree(tmp_path, CLIENTS, TESTS, central={"dog": 2, "owl": 1})
    ds = load_dataset("client-folders", str(tmp_path), image_size=8, color="grey")
    x, y = stack(written["_test"])
    np.testing.assert_array_equal(ds.x_test, x)
    np.testing.assert_array_equal(ds.y_test, y)
    assert (owners_of(ds.x_test) == mark(3)).all()  # no client's images among them


@pytest.mark.parametrize(("size", "color"), [(5, "rgb"), (12, "grey")])
def test_image_size_and_color_decode_as_image_folder(tmp_path, size, color):
    write_tree(tmp_path / "tree", {"solo": {"cat": 2, "dog": 3}}, {"solo": {"dog": 1}})
    ours = load_dataset("client-folders", str(tmp_path / "tree"), image_size=size, color=color)
    # The client's own folder is an image-folder tree (train/ + test/): same decoding.
    theirs = load_dataset("image-folder", str(tmp_path / "tree" / "solo"), size, color)
    assert ours.x_train.shape == (5, size, size, 3 if color == "rgb" else 1)
    np.testing.assert_array_equal(ours.x_train, theirs.x_train)
    np.testing.assert_array_equal(ours.x_test, theirs.x_test)
    assert load_dataset("client-folders", str(tmp_path / "tree"), size, color) is ours


def test_config_implies_the_natural_partition_and_client_count(tmp_path):
    write_tree(tmp_path, CLIENTS, TESTS)
    cfg = config(tmp_path)
    assert cfg.data.partition == "natural"
    assert cfg.federation.num_clients == 3 and cfg.federation.clients_per_round == 3
    assert config(tmp_path, **{"num-clients": 3, "clients-per-round": 2}) is not None
    again = ExperimentConfig.from_flat(cfg.to_flat())  # what every message carries
    assert again == cfg


def test_client_k_loads_exactly_folder_k(tmp_path):
    written = write_tree(tmp_path, CLIENTS, TESTS)
    cfg = config(tmp_path, seed=7)
    assert len(partitions_for(cfg)) == 3
    for k, name in enumerate(sorted(CLIENTS)):
        x, y = client_shard(cfg, k)
        want_x, want_y = stack(written[f"{name}/train"])
        np.testing.assert_array_equal(x, want_x)
        np.testing.assert_array_equal(y, want_y)
        assert (owners_of(x) == mark(k)).all()  # the owner mark of folder k only


def test_subset_and_continual_tasks_keep_clients_to_their_folder(tmp_path):
    write_tree(tmp_path, CLIENTS, TESTS)
    cfg = config(tmp_path, **{"train-subset": 8})
    shards = [client_shard(cfg, k)[0] for k in range(3)]
    assert sum(len(s) for s in shards) == 8
    for k, x in enumerate(shards):
        assert (owners_of(x) == mark(k)).all()
    for scenario in ("class-incremental", "domain-incremental"):
        cfg = config(tmp_path, scenario=scenario, **{"num-tasks": 2, "rounds": 4})
        for k in range(3):
            held = [task_shard(cfg, k, t) for t in range(2)]
            assert sum(len(y) for _, y in held) == sum(CLIENTS[sorted(CLIENTS)[k]].values())
            if scenario == "class-incremental":
                for x, _ in held:
                    assert (owners_of(x) == mark(k)).all()


def test_natural_partition_groups_by_owner():
    owners = np.array([2, 0, 2, 1, 0])
    parts = partition("natural", [0, 1, 0, 1, 0], 4, seed=3, owners=owners)
    assert [p.tolist() for p in parts] == [[1, 4], [3], [0, 2], []]
    assert [p.tolist() for p in partition("natural", [0] * 5, 4, 9, owners=owners)] == [
        p.tolist() for p in parts
    ]  # the seed plays no part
    with pytest.raises(ConfigError) as excinfo:
        partition("natural", [0, 1], 2, seed=0)
    one_line(excinfo, "client-folders")
    with pytest.raises(ConfigError) as excinfo:
        partition("natural", [0] * 5, 2, seed=0, owners=owners)
    one_line(excinfo, "names 3 clients", "num-clients is 2")


@pytest.mark.parametrize(
    ("more", "needles"),
    [
        ({"partition": "dirichlet"}, ["already split", 'remove partition = "dirichlet"']),
        ({"partition": "sampled"}, ["already split"]),
        ({"num-clients": 4}, ["num-clients (4) must equal the 3 client folders"]),
        ({"num-clients": 2, "clients-per-round": 2}, ["set num-clients=3"]),
    ],
)
def test_contradictory_settings_are_one_line(tmp_path, more, needles):
    write_tree(tmp_path, CLIENTS, TESTS)
    with pytest.raises(ConfigError) as excinfo:
        config(tmp_path, **more)
    one_line(excinfo, *needles)


def test_natural_needs_client_folders():
    with pytest.raises(ConfigError) as excinfo:
        ExperimentConfig.from_flat({"partition": "natural"})
    one_line(excinfo, "'fashion-mnist' has none", 'dataset = "client-folders"')
    with pytest.raises(ConfigError) as excinfo:
        ExperimentConfig.from_flat({"dataset": "client-folders"})
    one_line(excinfo, "needs data-path")


def _break(root, how: str) -> None:
    """Damage a good 2-client tree (a, b) in one way."""
    if how == "empty-class":
        (root / "b" / "train" / "emu").mkdir()
    elif how == "unreadable":
        (root / "b" / "train" / "cat" / "img000.png").write_bytes(b"not a png")
    elif how == "no-train":
        (root / "c" / "val").mkdir(parents=True)
    elif how == "no-classes":
        (root / "c" / "train").mkdir(parents=True)
    elif how == "reserved":
        (root / "_extra").mkdir()
    elif how == "unknown-test-class":
        write_split(root / "_test", {"yak": 1}, 5, ("yak",))
    elif how == "test-file":
        (root / "_test").write_text("")


@pytest.mark.parametrize(
    ("how", "needles"),
    [
        ("empty-class", ["class folder", "emu has no images"]),
        ("unreadable", ["cannot decode image", "img000.png"]),
        ("no-train", ["client folder", "has no train/ folder"]),
        ("no-classes", ["client 'c': training folder", "holds no class folders"]),
        ("reserved", ["'_extra' starts with '_'"]),
        ("unknown-test-class", ["has classes ['yak'] that no client has in train/"]),
        ("test-file", ["_test is not a folder"]),
    ],
)
def test_bad_trees_are_one_line(tmp_path, how, needles):
    root = tmp_path / "tree"
    write_tree(root, {"a": {"cat": 1}, "b": {"cat": 2}}, {"a": {"cat": 1}})
    _break(root, how)
    with pytest.raises(DataError) as excinfo:
        load_dataset("client-folders", str(root))
    one_line(excinfo, *needles)


def test_missing_paths_and_empty_trees_are_one_line(tmp_path):
    cases = [
        ("", ["dataset 'client-folders' needs data-path"]),
        (str(tmp_path / "nowhere"), ["does not exist"]),
        (str(tmp_path / "file"), ["is not a directory"]),
        (str(tmp_path / "empty"), ["holds no client folders"]),
        (str(tmp_path / "no-tests"), ["hold no test images", "_test"]),
    ]
    (tmp_path / "file").write_text("")
    (tmp_path / "empty" / ".git").mkdir(parents=True)  # hidden folders are not clients
    write_tree(tmp_path / "no-tests", {"a": {"cat": 1}})
    for path, needles in cases:
        with pytest.raises(DataError) as excinfo:
            load_dataset("client-folders", path)
        one_line(excinfo, *needles)
