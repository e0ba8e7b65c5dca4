"""Value checks for error messages (short, is_int, is_number, number) and the one JSON decoder of user input."""
import json
import math

from .errors import InstDiffError
from .limits import MAX_JSON_CHARS, MAX_LAYOUT_POINTS, MAX_MASK_PIXELS


def short(value) -> str:
    """repr(value) cut to 60 characters, for error messages."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def is_int(v) -> bool:
    """A Python int that is not a bool."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v) -> bool:
    """An int/float (not a bool) that is neither NaN nor infinite (huge ints count as numbers)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")


def number(v, where: str) -> float:
    """An int/float (not a bool) as a finite float; anything else raises InstDiffError naming `where`."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise InstDiffError(f"{where}: expected a number, got {short(v)}")
    try:
        f = float(v)
    except OverflowError:
        f = math.inf
    if not math.isfinite(f):
        raise InstDiffError(f"{where}: expected a finite number, got {short(v)}")
    return f


def decode_json(data, what: str, wording: str = "{what} is not valid JSON: {exc}"):
    """A JSON string/bytes decoded (anything else returned as is); bad (or too deeply nested) JSON raises
    InstDiffError with `wording`, its {what} and {exc} (the decoder's message) filled in. Text longer than
    MAX_JSON_CHARS is refused before decoding."""
    if isinstance(data, (str, bytes)):
        if len(data) > MAX_JSON_CHARS:
            raise InstDiffError(
                f"{what} is {len(data):,} characters long; the limit is {MAX_JSON_CHARS:,} (MAX_JSON_CHARS in "
                "instdiff_model/limits.py). Give masks as compressed COCO RLE, fewer points per scribble/polygon, "
                "or fewer instances/keyframes")
        try:
            return json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise InstDiffError(wording.format(what=what, exc=exc)) from None
    return data


def check_cost(points: int, pixels: int, what: str) -> None:
    """Refuse `what` if its scribble/polygon points or mask pixels exceed MAX_LAYOUT_POINTS / MAX_MASK_PIXELS."""
    if points > MAX_LAYOUT_POINTS:
        raise InstDiffError(
            f"{what} has {points:,} scribble/polygon points; the limit is {MAX_LAYOUT_POINTS:,} (MAX_LAYOUT_POINTS in "
            "instdiff_model/limits.py). Simplify the strokes/rings (the model samples 20 scribble points and 256 "
            "polygon vertices anyway)")
    if pixels > MAX_MASK_PIXELS:
        raise InstDiffError(
            f"{what} has {pixels:,} mask pixels in all; the limit is {MAX_MASK_PIXELS:,} (30 masks at 8192x8192, "
            "MAX_MASK_PIXELS in instdiff_model/limits.py). Use fewer masks, a smaller image, or fewer frames")
