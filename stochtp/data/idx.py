"""Reader for gzip-compressed IDX files, the format MNIST is distributed in.

An IDX file is a header of big-endian uint32 integers followed by the payload. The first
integer is the magic number: two zero bytes, a type code (0x08 = unsigned bytes) and the
number of dimensions; one uint32 size per dimension follows. MNIST images have magic 2051
(0x00000803: N x rows x cols bytes), labels 2049 (0x00000801: N bytes).

Every way a file can be damaged (not gzip, truncated, wrong magic, payload shorter or longer
than the header says) ends in a `DataError` naming the file, never in a NumPy or zlib error.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from stochtp.errors import DataError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
UNSIGNED_BYTE = 0x08


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Read the unsigned-byte IDX file at `path` (gzip) whose magic number must be `magic`.

    Returns a writable uint8 array shaped as the header says, e.g. (60000, 28, 28).
    """
    if (magic >> 8) & 0xFF != UNSIGNED_BYTE:
        raise ValueError(f"only unsigned-byte IDX files are supported, not magic {magic:#010x}")
    ndim = magic & 0xFF
    header_size = 4 * (1 + ndim)
    try:
        with gzip.open(path, "rb") as stream:
            header = stream.read(header_size)
            found_magic = int.from_bytes(header[:4], "big")
            if len(header) >= 4 and found_magic != magic:
                raise DataError(
                    f"{path} is not the expected IDX file: its magic number is {found_magic} "
                    f"where {magic} was expected."
                )
            if len(header) < header_size:
                raise DataError(f"{path} is truncated: it ends inside the {header_size}-byte IDX header.")
            _, *shape = struct.unpack(f">{1 + ndim}I", header)
            try:
                payload = np.empty(math.prod(shape), dtype=np.uint8)
            except (MemoryError, ValueError):
                raise DataError(f"{path} is corrupt: its header announces an impossible shape {tuple(shape)}.") from None
            filled = _read_into(stream, memoryview(payload))
            if filled < payload.size:
                raise DataError(
                    f"{path} is truncated: its header announces {payload.size} bytes of data "
                    f"(shape {tuple(shape)}) but it holds only {filled}."
                )
            if stream.read(1):
                raise DataError(
                    f"{path} is not a valid IDX file: it holds more data than the "
                    f"{payload.size} bytes its header announces (shape {tuple(shape)})."
                )
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise DataError(f"{path} is not a complete gzip file ({error}); it is truncated or corrupt.") from None
    except OSError as error:
        raise DataError(f"{path} cannot be read: {error.strerror or error}.") from None
    return payload.reshape(shape)


def _read_into(stream, buffer: memoryview) -> int:
    """Fill `buffer` from `stream` until it is full or the stream ends; return the bytes read."""
    filled = 0
    while filled < len(buffer):
        count = stream.readinto(buffer[filled:])
        if not count:
            break
        filled += count
    return filled
