"""COCO run-length encoding of masks (compressed string or list of run lengths), as pycocotools writes it."""
import numpy as np

from .errors import InstDiffError
from .values import is_int, short


def rle_decode(rle, height: int, width: int, where: str = "mask") -> np.ndarray:
    """COCO RLE ({"size": [h, w], "counts": str | [int]}, column-major runs starting with 0s) -> (h, w) bool."""
    if not isinstance(rle, dict) or "counts" not in rle or "size" not in rle:
        raise InstDiffError(f'{where}: expected COCO RLE {{"size": [h, w], "counts": ...}}, got {short(rle)}')
    size = rle["size"]
    if not (isinstance(size, list) and len(size) == 2 and all(is_int(s) and s >= 0 for s in size)):
        raise InstDiffError(f"{where}: RLE size must be [height, width] integers, got {short(size)}")
    if list(size) != [height, width]:
        raise InstDiffError(
            f"{where}: mask is {size[0]}x{size[1]} (HxW) but the image is {height}x{width}; resize the mask to the image size"
        )
    counts = rle["counts"]
    if isinstance(counts, (bytes, str)):
        counts = _counts_from_string(counts.decode("ascii", "replace") if isinstance(counts, bytes) else counts, where)
    elif not (isinstance(counts, list) and all(is_int(c) and c >= 0 for c in counts)):
        raise InstDiffError(f"{where}: RLE counts must be a string or a list of non-negative integers")
    if sum(counts) != height * width:
        raise InstDiffError(
            f"{where}: RLE run lengths sum to {sum(counts)}, expected height*width = {height * width}; re-encode the mask"
        )
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, np.asarray(counts, dtype=np.int64))
    return flat.reshape(width, height).T.copy()


def rle_encode(mask: np.ndarray) -> dict:
    """(h, w) bool -> COCO compressed RLE {"size": [h, w], "counts": str}."""
    h, w = mask.shape
    flat = np.asarray(mask, dtype=bool).T.ravel()
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0] + counts
    return {"size": [h, w], "counts": _counts_to_string(counts)}


def _counts_to_string(counts: list) -> str:
    out = []
    for i, x in enumerate(counts):
        if i > 2:
            x -= counts[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            out.append(chr(c + 48 + (0x20 if more else 0)))
    return "".join(out)


def _counts_from_string(s: str, where: str) -> list:
    counts, p = [], 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            if p >= len(s):
                raise InstDiffError(f"{where}: truncated compressed RLE string")
            c = ord(s[p]) - 48
            if not 0 <= c < 64:
                raise InstDiffError(f"{where}: invalid character {s[p]!r} in compressed RLE string")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        if x < 0:
            raise InstDiffError(f"{where}: compressed RLE string decodes to a negative run length")
        counts.append(x)
    return counts
