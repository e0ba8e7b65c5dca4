"""Value checks for error messages (short, is_int, is_number, number) and the one JSON decoder of user input."""
import json
import math

from .errors import InstDiffError


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
    InstDiffError with `wording`, its {what} and {exc} (the decoder's message) filled in."""
    if isinstance(data, (str, bytes)):
        try:
            return json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise InstDiffError(wording.format(what=what, exc=exc)) from None
    return data
