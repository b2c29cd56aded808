"""The one vocabulary for checking options: integers, numbers, flags, choices, names.

Every public constructor (``ShardWriter``, ``EvalDumpHook``, ``ExportOptions``,
``RenderOptions``...) checks its arguments with these, so the same mistake gets
the same one-line ``ConfigError`` everywhere. ``True`` is never an integer here,
although Python says ``isinstance(True, int)``.

>>> check_int(3, "workers", minimum=1)
3
>>> check_int(True, "workers", minimum=1)
Traceback (most recent call last):
...
exporter.errors.ConfigError: workers must be an integer >= 1, got True
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import numpy as np

from .errors import ConfigError

T = TypeVar("T")


def is_int(value: Any) -> bool:
    """An int or numpy integer that is not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _range_text(minimum: int | float | None, maximum: int | float | None) -> str:
    if minimum is not None and maximum is not None:
        return f" in {minimum}..{maximum}"
    if minimum is not None:
        return f" >= {minimum}"
    if maximum is not None:
        return f" <= {maximum}"
    return ""


def check_int(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an ``int`` if it is an integer (not a bool) within the bounds, else ConfigError."""
    if not is_int(value) or (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ConfigError(f"{name} must be an integer{_range_text(minimum, maximum)}, got {value!r}")
    return int(value)


def check_optional_int(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int | None:
    """``check_int``, with None allowed (meaning "no limit" or "not set")."""
    if value is None:
        return None
    if not is_int(value) or (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ConfigError(f"{name} must be None or an integer{_range_text(minimum, maximum)}, got {value!r}")
    return int(value)


def check_number(
    value: Any,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
) -> float:
    """``value`` as a finite ``float`` within the bounds (``above``: strictly greater), else ConfigError."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    number = float(value) if ok else math.nan
    if not math.isfinite(number):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if above is not None and not number > above:
        top = f" and <= {maximum}" if maximum is not None else ""
        raise ConfigError(f"{name} must be > {above}{top}, got {value!r}")
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise ConfigError(f"{name} must be a number{_range_text(minimum, maximum)}, got {value!r}")
    return number


def check_range(value: Any, name: str) -> tuple[float, float]:
    """A ``(low, high)`` pair of finite numbers with low < high, as floats, else ConfigError."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be (low, high), got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ConfigError(f"{name} (low, high) must be finite with low < high, got {value!r}")
    return lo, hi


def check_bool(value: Any, name: str) -> bool:
    """``value`` if it is True or False (numpy's too), else ConfigError: ``"no"`` is not False."""
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_choice(value: Any, choices: Iterable[str], name: str) -> Any:
    """``value`` if it is one of ``choices``, else ConfigError listing them."""
    options = tuple(choices)
    if not isinstance(value, str) or value not in options:
        raise ConfigError(f"{name} must be one of {', '.join(map(str, options))}, got {value!r}")
    return value


def check_names(value: Any, name: str) -> tuple[str, ...]:
    """A list of strings (class names...) as a tuple, else ConfigError; a lone string is refused."""
    if isinstance(value, str) or not isinstance(value, Sequence) or not all(isinstance(c, str) for c in value):
        raise ConfigError(f"{name} must be a list of strings or None, got {value!r}")
    return tuple(value)


def check_type(value: Any, cls: type[T], name: str, what: str | None = None) -> T:
    """``value`` if it is a ``cls``, else ConfigError naming what was expected and what came."""
    if not isinstance(value, cls):
        raise ConfigError(f"{name} must be {what or 'a ' + cls.__name__}, got {type(value).__name__}")
    return value
