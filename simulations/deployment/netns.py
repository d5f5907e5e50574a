"""Separate hosts on one machine: Linux network namespaces joined by a virtual switch.

A fault test (or `perennial deploy bench-faults`) needs the SuperLink and every
SuperNode on hosts of their own, so that cutting one host's link or killing one host
touches nothing else, and TLS is checked against a real address rather than 127.0.0.1.
`Network` makes that out of namespaces, as root, without touching the machine's own
network: a *switch* namespace holds a bridge; every host namespace has a loopback and
one `eth0` (a veth pair whose other end is a bridge port), addressed 10.200.0.N/24.
Nothing is added to the root namespace, so two networks (two test sessions) never
collide; namespace names carry this process's pid.

`unavailable()` says why namespaces cannot be made here (not root, no `ip`, no
permission), so callers skip with that reason instead of passing silently.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field

SUBNET = "10.200.0"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def unavailable() -> str | None:
    """Why network namespaces cannot be made on this machine, or None if they can."""
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root (`ip netns add`); run as root"
    name = f"pn{os.getpid()}probe"
    made = _ip("netns", "add", name, check=False)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip() or made.returncode}"
    _ip("netns", "del", name, check=False)
    return None


@dataclass(frozen=True)
class Host:
    """One namespace on the network: its name and its address on the switch."""

    name: str  # the host's own name ("superlink", "node-1")
    netns: str  # the namespace (`ip netns exec NETNS ...`)
    address: str  # 10.200.0.N

    def wrap(self, cmd: list[str]) -> list[str]:
        """`cmd` run inside this host (same pid: `ip netns exec` execs it)."""
        return ["ip", "netns", "exec", self.netns, *cmd]


@dataclass
class Network:
    """A switch and the hosts on it; `close()` removes all of it (and what runs there)."""

    tag: str = "net"
    hosts: dict[str, Host] = field(default_factory=dict)
    made: list[str] = field(default_factory=list)  # namespaces, in creation order

    def __post_init__(self) -> None:
        self.switch = f"pn{os.getpid()}{self.tag}-sw"
        self._add_netns(self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")

    def _add_netns(self, name: str) -> None:
        _ip("netns", "add", name)
        self.made.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def add(self, name: str) -> Host:
        """A new host on the switch, with the next free address."""
        index = len(self.hosts) + 1
        netns = f"pn{os.getpid()}{self.tag}-{name}"
        self._add_netns(netns)
        port = f"p{index}"
        _ip("-n", self.switch, "link", "add", port, "type", "veth", "peer", "eth0", "netns", netns)
        _ip("-n", self.switch, "link", "set", port, "master", "br0")
        _ip("-n", self.switch, "link", "set", port, "up")
        address = f"{SUBNET}.{index}"
        _ip("-n", netns, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", netns, "link", "set", "eth0", "up")
        host = Host(name, netns, address)
        self.hosts[name] = host
        return host

    def cut(self, name: str) -> None:
        """Pull the host's cable: its eth0 goes down; connections stall, nothing resets."""
        _ip("-n", self.hosts[name].netns, "link", "set", "eth0", "down")

    def restore(self, name: str) -> None:
        _ip("-n", self.hosts[name].netns, "link", "set", "eth0", "up")

    def kill_host(self, name: str) -> list[int]:
        """SIGKILL every process in the host's namespace (the machine dies); their pids."""
        return _kill_all(self.hosts[name].netns)

    def close(self) -> None:
        """Kill what runs in our namespaces, then delete them (switch last)."""
        for netns in reversed(self.made):
            _kill_all(netns)
            _ip("netns", "del", netns, check=False)
        self.made.clear()
        self.hosts.clear()


def _kill_all(netns: str, timeout: float = 10.0) -> list[int]:
    """SIGKILL the processes in `netns` (ours: only we start processes there)."""
    found = _ip("netns", "pids", netns, check=False).stdout.split()
    pids = [int(p) for p in found if p.isdigit()]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _ip("netns", "pids", netns, check=False).stdout.split():
            break
        time.sleep(0.1)
    return pids
