"""Small loop helpers: dtype preservation and update validation."""

from __future__ import annotations

import numpy as np
from flwr.app import ArrayRecord

from server.loop import _cast_like


def test_global_model_keeps_model_dtypes():
    record = ArrayRecord([np.ones((2, 2), np.float64), np.zeros(3, np.float64)])
    out = _cast_like(record, [np.dtype(np.float32), np.dtype(np.float32)])
    assert [a.dtype for a in out.to_numpy_ndarrays()] == [np.float32, np.float32]
    same = ArrayRecord([np.ones(2, np.float32)])
    assert _cast_like(same, [np.dtype(np.float32)]) is same
