"""Per-client state kept on disk between rounds, loaded only while a client is active.

Anything a client remembers (SCAFFOLD control variates, FedDyn gradient state,
replay buffers) is a dict of NumPy arrays saved as one `.npz` per client and round
under the run directory. A registered-but-idle client costs nothing but its index,
which is what lets a simulation register 100,000 clients.

Versions are kept per round so that a run resumed from the checkpoint of round r
sees each client's state as it was after round r, even if the interrupted round
r+1 had already saved newer state for some clients.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import numpy as np

_NAME = re.compile(r"^(\d+)\.r(\d+)\.npz$")


class ClientStore:
    """Directory of `<bucket>/<client>.r<round>.npz` files; writes are atomic."""

    def __init__(self, root: str | Path, keep: int = 2):
        self.root = Path(root)
        self.keep = keep

    def _dir(self, client_id: int) -> Path:
        # 1,000 clients per folder keeps directories small at 100,000 clients.
        return self.root / f"{client_id // 1000:05d}"

    def _versions(self, client_id: int) -> list[tuple[int, Path]]:
        d = self._dir(client_id)
        if not d.is_dir():
            return []
        found = []
        for p in d.glob(f"{client_id}.r*.npz"):
            m = _NAME.match(p.name)
            if m and int(m.group(1)) == client_id:
                found.append((int(m.group(2)), p))
        return sorted(found)

    def load(self, client_id: int, before_round: int | None = None) -> dict[str, np.ndarray]:
        """Latest saved state (saved in a round < `before_round`), or {} if none."""
        versions = [
            (r, p) for r, p in self._versions(client_id) if before_round is None or r < before_round
        ]
        if not versions:
            return {}
        with np.load(versions[-1][1], allow_pickle=False) as data:
            return {k: data[k] for k in data.files}

    def save(self, client_id: int, state: dict[str, np.ndarray], server_round: int = 0) -> None:
        """Write the state as of `server_round`; a crash mid-write leaves older ones intact."""
        d = self._dir(client_id)
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{client_id}.r{server_round}.npz"
        fd, tmp = tempfile.mkstemp(dir=d, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **{k: np.asarray(v) for k, v in state.items()})
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        for _, old in self._versions(client_id)[: -self.keep]:
            old.unlink(missing_ok=True)

    def clients(self) -> list[int]:
        """Ids of clients that have saved state."""
        ids = set()
        for p in self.root.glob("*/*.npz"):
            m = _NAME.match(p.name)
            if m:
                ids.add(int(m.group(1)))
        return sorted(ids)
