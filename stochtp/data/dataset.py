"""The containers every loader returns: a `Dataset` of three `Split`s.

Image data keeps its pixels as uint8 (MNIST's 60 000 x 784 pixels take 47 MB instead of 188 MB
as float32); `Split.features` converts and scales only the rows asked for, so a training loop
can turn one mini-batch at a time into float features in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stochtp.kernels.fused import scaled_rows, scaled_rows_reference


@dataclass(frozen=True)
class Split:
    """One part (train, valid or test) of a dataset.

    x: raw inputs, one example per row (N, d): uint8 pixels for image data, float32 otherwise.
    y: int64 class indices (N,).
    scale: multiply raw `x` by this to get features in [0, 1] (1/255 for uint8 pixels).
    """

    x: np.ndarray
    y: np.ndarray
    scale: float = 1.0

    def __len__(self) -> int:
        return len(self.y)

    def features(self, index=None, dtype=np.float32, out=None) -> np.ndarray:
        """Return `x[index]` (all rows when `index` is None) as a new `dtype` array, scaled.

        `index` is anything NumPy accepts on the first axis: a slice, an int array, an int.
        `out`, a C-contiguous `dtype` array of the result's shape, is filled instead of a new
        array where the rows are gathered from pixels (the training loop's case), and ignored
        otherwise.
        """
        scale = np.dtype(dtype).type(self.scale)
        if _gathers_pixel_rows(self.x, index):
            shape = (len(index), self.x.shape[1])
            if out is None:
                out = np.empty(shape, dtype=dtype)
            elif out.shape != shape or out.dtype != dtype or not out.flags.c_contiguous:
                raise ValueError(f"out must be a C-contiguous {np.dtype(dtype)} array of shape {shape}, got {out.dtype} {out.shape}")
            scaled_rows(self.x, index, scale, out)  # what scaled_rows_reference gives, in one pass
            return out
        rows = self.x if index is None else self.x[index]
        if self.scale == 1.0:
            return np.array(rows, dtype=dtype)
        return scaled_rows_reference(rows, scale)


@dataclass(frozen=True)
class Dataset:
    """A classification task split into training, validation and test parts."""

    name: str
    n_features: int
    n_classes: int
    train: Split
    valid: Split
    test: Split


def _gathers_pixel_rows(x, index):
    """Whether `features(index)` is the training loop's case that `scaled_rows` takes: rows of a
    C-contiguous uint8 matrix picked by a 1-D integer array whose entries all lie in [0, N)."""
    if not (isinstance(index, np.ndarray) and index.ndim == 1 and index.dtype.kind in "iu" and len(index)):
        return False
    if not (x.dtype == np.uint8 and x.ndim == 2 and x.flags.c_contiguous):
        return False
    return bool(index.min() >= 0 and index.max() < len(x))
