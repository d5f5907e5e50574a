"""The device model and availability: pure, seeded, O(1) per client; bad files refused."""

from __future__ import annotations

import math

import pytest

from learning.availability import Availability
from learning.config import ExperimentConfig
from learning.devices import Device, DeviceModel
from learning.errors import ConfigError


def _d(**kw):
    return ExperimentConfig.from_flat({"num-clients": 50, "clients-per-round": 5, **kw})


def test_duration_is_compute_plus_transfers_plus_latency():
    d = Device(speed=0.01, up=1000.0, down=4000.0, latency=0.5)
    assert d.duration(examples=30, epochs=2, bytes_down=8000, bytes_up=2000) == pytest.approx(
        0.01 * 60 + 8000 / 4000 + 2000 / 1000 + 0.5
    )


def test_uniform_profile_gives_every_client_the_median_device():
    cfg = _d()
    m = DeviceModel(cfg.devices, 0, 50)
    assert {m(p) for p in range(50)} == {Device(0.002, 1.25e6, 5.0e6, 0.05)}


def test_lognormal_and_slow_mix_are_seeded_per_client():
    cfg = _d(**{"device-profile": "lognormal", "slow-fraction": 0.1, "slow-factor": 10.0})
    a, b = DeviceModel(cfg.devices, 3, 50), DeviceModel(cfg.devices, 3, 50)
    assert [a(p) for p in range(50)] == [b(p) for p in reversed(range(50))][::-1]
    assert DeviceModel(cfg.devices, 4, 50)(0) != a(0)
    speeds = [DeviceModel(cfg.devices, 3, 2000)(p).speed for p in range(2000)]
    slow = sum(s > 0.002 * 10 * math.exp(-2 * 0.5) for s in speeds) / 2000
    assert 0.05 < slow < 0.2
    # the population size does not change a client's device
    assert DeviceModel(cfg.devices, 3, 2000)(7) == a(7)


def test_device_file(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("client,speed,up,down,latency\n0,0.1,10,20,1\n1,0.2,30,40,0\n")
    cfg = _d(
        **{
            "num-clients": 2,
            "clients-per-round": 1,
            "device-profile": "file",
            "device-file": str(f),
        }
    )
    m = DeviceModel(cfg.devices, 0, 2)
    assert m(1) == Device(0.2, 30.0, 40.0, 0.0)


@pytest.mark.parametrize(
    "text, says",
    [
        ("client,speed,up,down\n0,1,1,1\n", "lacks column(s) latency"),
        ("client,speed,up,down,latency\n0,-1,1,1,0\n1,1,1,1,0\n", "must be >= 0"),
        ("client,speed,up,down,latency\n0,1,0,1,0\n1,1,1,1,0\n", "must be > 0"),
        ("client,speed,up,down,latency\n0,1,1,1,0\n7,1,1,1,0\n", "unknown client 7"),
        ("client,speed,up,down,latency\n0,1,1,1,0\n", "no row for 1 client"),
        ("client,speed,up,down,latency\n0,x,1,1,0\n1,1,1,1,0\n", "is not a number"),
    ],
)
def test_bad_device_files_are_refused_in_one_line(tmp_path, text, says):
    f = tmp_path / "d.csv"
    f.write_text(text)
    with pytest.raises(ConfigError, match=r"device-file") as e:
        _d(
            **{
                "num-clients": 2,
                "clients-per-round": 1,
                "device-profile": "file",
                "device-file": str(f),
            }
        )
    assert says in str(e.value) and "\n" not in str(e.value)


def test_diurnal_windows_follow_period_duty_cycle_and_phase():
    cfg = _d(**{"availability": "diurnal", "diurnal-period": 100.0, "duty-cycle": 0.3})
    av = Availability(cfg.devices, 1, 50)
    for p in range(50):
        ph = av.phase(p)
        assert 0 <= ph < 100
        t_on = (100 - ph) % 100  # (t + phase) % 100 == 0: the window opens
        assert av.online(p, t_on + 1) and av.online_until(p, t_on + 1) == pytest.approx(t_on + 30)
        assert not av.online(p, t_on + 31)
        assert av.online(p, t_on + 101)
    share = sum(av.online(p, 12.5) for p in range(50)) / 50
    assert 0.1 < share < 0.5


def test_availability_file_intervals(tmp_path):
    f = tmp_path / "a.csv"
    f.write_text("client,start,end\n0,0,10\n0,20,30\n1,5,6\n")
    cfg = _d(
        **{
            "num-clients": 3,
            "clients-per-round": 1,
            "availability": "file",
            "availability-file": str(f),
        }
    )
    av = Availability(cfg.devices, 0, 3)
    assert av.online_until(0, 3) == 10 and av.online(0, 25) and not av.online(0, 15)
    assert av.online(1, 5.5) and not av.online(1, 6) and not av.online(2, 0)


@pytest.mark.parametrize(
    "text, says",
    [
        ("client,begin,end\n0,0,1\n", r"lacks column\(s\) start"),
        ("client,start,end\n0,5,5\n", "0 <= start < end"),
        ("client,start,end\n9,0,5\n", "unknown client 9"),
        ("client,start,end\n0,0,5\n0,4,8\n", "overlapping"),
    ],
)
def test_bad_availability_files_are_refused(tmp_path, text, says):
    f = tmp_path / "a.csv"
    f.write_text(text)
    with pytest.raises(ConfigError, match=says):
        _d(
            **{
                "num-clients": 3,
                "clients-per-round": 1,
                "availability": "file",
                "availability-file": str(f),
            }
        )


@pytest.mark.parametrize(
    "keys, says",
    [
        ({"round-deadline": 0.0}, "must be > 0"),
        ({"round-deadline": -5.0}, "must be > 0"),
        ({"strategy": "fedbuff", "fedbuff-k": 11, "concurrency": 10}, r"fedbuff-k \(11\) exceeds"),
        ({"strategy": "fedasync", "dp": "central", "delta": 1e-3}, "not supported yet"),
        ({"strategy": "fedbuff", "secure-aggregation": True}, "not supported yet"),
        ({"over-selection": 1.3}, "needs round-policy"),
        (
            {"over-selection": 1.3, "round-policy": "deadline", "dp": "central", "delta": 1e-3},
            "over-selection with central DP",
        ),
        ({"device-profile": "file"}, "needs device-file"),
        ({"availability": "file"}, "needs availability-file"),
        ({"device-profile": "file", "device-file": "/nonexistent.csv"}, "does not exist"),
        ({"task-seconds": 10.0}, "needs a continual scenario"),
        ({"strategy": "fedasync", "concurrency": 51}, "exceeds num-clients"),
    ],
)
def test_impossible_settings_are_refused_before_anything_runs(keys, says):
    import strategies  # noqa: F401  (registers the strategy names)

    with pytest.raises(ConfigError, match=says) as e:
        _d(**keys)
    assert "\n" not in str(e.value)
