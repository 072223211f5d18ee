"""Small arrays inline in the manifest: numpy arrays to and from ``TensorData`` (little-endian, base64)."""

from __future__ import annotations

import base64
import binascii

import numpy as np
import numpy.typing as npt

from edgefleet.errors import ManifestError
from edgefleet.manifest import DType, TensorData

__all__ = ["decode_tensor", "encode_tensor"]


def encode_tensor(array: npt.ArrayLike) -> TensorData:
    """Encode an array of one of the manifest's dtypes; raises ValueError for another dtype."""
    data = np.asarray(array)
    dtype = DType(data.dtype.name)
    raw = np.ascontiguousarray(data, dtype=data.dtype.newbyteorder("<")).tobytes()
    return TensorData(dtype=dtype, shape=list(data.shape), data_b64=base64.b64encode(raw).decode())


def decode_tensor(tensor: TensorData) -> npt.NDArray[np.generic]:
    """Decode to an array; raises ManifestError when the bytes do not fill the declared shape."""
    try:
        raw = base64.b64decode(tensor.data_b64, validate=True)
    except binascii.Error as err:
        raise ManifestError(f"a test vector is not valid base64: {err}", hint="rebuild the package") from err
    dtype = np.dtype(tensor.dtype.value).newbyteorder("<")
    expected = int(np.prod(tensor.shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise ManifestError(
            f"a test vector of shape {tensor.shape} and dtype {tensor.dtype} needs {expected} bytes, has {len(raw)}",
            hint="rebuild the package",
        )
    return np.frombuffer(raw, dtype=dtype).reshape(tensor.shape).astype(dtype.newbyteorder("="))
