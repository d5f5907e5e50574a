"""Read and write IDX files (the MNIST / Fashion-MNIST container), plain or gzipped.

Only the unsigned-byte element type (0x08) is supported: that is all the image and label
files of the MNIST family use, and it keeps the reader small enough to validate fully.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from learning.errors import DataError

_UBYTE = 0x08
_MAX_NDIM = 4


def _magic(ndim: int) -> int:
    return (_UBYTE << 8) | ndim


def _read_bytes(path: Path) -> bytes:
    """Whole file, decompressed when it ends with .gz; any I/O or gzip failure is a DataError."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"cannot read IDX file {path}: no such file; check the data path") from None
    except (OSError, EOFError, zlib.error) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"cannot read IDX file {path}: {detail}; is the file complete and not corrupted?"
        ) from None


def read_idx(path: str | Path, expected_ndim: int | None = None) -> np.ndarray:
    """Return the uint8 array stored in an IDX file, checking magic number, dims and length.

    ``expected_ndim`` (1 for labels, 3 for images) turns a wrong-but-valid file into a clear
    error instead of a confusing shape mismatch later.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise DataError(
            f"cannot read IDX file {path}: only {len(raw)} bytes, too short for a header; "
            "is the file complete?"
        )
    magic = int.from_bytes(raw[:4], "big")
    ndim = raw[3]
    if expected_ndim is not None:
        ok = magic == _magic(expected_ndim)
        want = f"0x{_magic(expected_ndim):04X}"
    else:
        ok = raw[0] == 0 and raw[1] == 0 and raw[2] == _UBYTE and 1 <= ndim <= _MAX_NDIM
        want = f"0x0801..0x080{_MAX_NDIM}"
    if not ok:
        kind = {1: "label", 3: "image"}.get(expected_ndim or 0, "unsigned-byte IDX")
        raise DataError(
            f"cannot read IDX file {path}: bad magic number 0x{magic:04X} (expected {want}); "
            f"is it an IDX {kind} file?"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(
            f"cannot read IDX file {path}: header truncated ({len(raw)} of {header} bytes); "
            "is the file complete?"
        )
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(dims, dtype=np.int64))
    payload = len(raw) - header
    if payload != expected:
        what = "truncated" if payload < expected else "has trailing bytes"
        raise DataError(
            f"cannot read IDX file {path}: payload {what} ({payload} bytes, dims {list(dims)} "
            f"need {expected}); re-download or re-extract the file"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as an unsigned-byte IDX file (gzipped when ``path`` ends with .gz)."""
    path = Path(path)
    arr = np.asarray(array)
    if not 1 <= arr.ndim <= _MAX_NDIM:
        raise DataError(f"cannot write IDX file {path}: ndim {arr.ndim} not in 1..{_MAX_NDIM}")
    if arr.dtype != np.uint8:
        if arr.dtype.kind not in "iub" or (arr.size and (arr.min() < 0 or arr.max() > 255)):
            raise DataError(
                f"cannot write IDX file {path}: dtype {arr.dtype} is not representable as uint8; "
                "cast to uint8 first"
            )
        arr = arr.astype(np.uint8)
    header = _magic(arr.ndim).to_bytes(4, "big") + b"".join(
        int(d).to_bytes(4, "big") for d in arr.shape
    )
    data = header + np.ascontiguousarray(arr).tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
