"""Per-client state kept on disk between rounds, loaded only while a client is active.

Anything a client remembers (SCAFFOLD control variates, replay buffers, EWC
statistics) is a dict of NumPy arrays saved as one `.npz` per client under the
run directory. A registered-but-idle client therefore costs nothing but its index,
which is what lets a simulation register 100,000 clients.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np


class ClientStore:
    """Directory of `<bucket>/<partition-id>.npz` files; writes are atomic."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _path(self, client_id: int) -> Path:
        # 1,000 clients per folder keeps directories small at 100,000 clients.
        return self.root / f"{client_id // 1000:05d}" / f"{client_id}.npz"

    def load(self, client_id: int) -> dict[str, np.ndarray]:
        """The client's saved arrays, or an empty dict for a client seen first time."""
        path = self._path(client_id)
        if not path.exists():
            return {}
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}

    def save(self, client_id: int, state: dict[str, np.ndarray]) -> None:
        """Replace the client's state; a crash mid-write leaves the old file intact."""
        path = self._path(client_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **{k: np.asarray(v) for k, v in state.items()})
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def clients(self) -> list[int]:
        """Ids of clients that have saved state."""
        return sorted(int(p.stem) for p in self.root.glob("*/*.npz"))
