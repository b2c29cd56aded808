"""Where an image is normalised: any supported array → (H, W, 3) uint8 RGB.

Layout: ``schema.image_layout`` (the one layout rule, shared with the shard
validator). Without a ``layout`` it guesses: 2-d → ``HW`` (grey); 3-d whose
last dim is 1, 3 or 4 → ``HWC``; else 3-d whose first dim is 1, 3 or 4 →
``CHW``; anything else → RenderError asking for an explicit ``layout``. So a
(3, 5, 3) array is read as HWC; pass ``layout="CHW"`` to say otherwise.

Value range (``value_range=None``):

* with ``mean``/``std``, the range is known, not guessed: undoing a
  normalisation gives back the pixels it was computed from, so [0, 255] when
  the statistics are those of 0..255 pixels (any ``mean`` or ``std`` above 1,
  e.g. ImageNet's (123.675, 116.28, 103.53) / (58.395, 57.12, 57.375)), else
  [0, 1] (e.g. (0.485, 0.456, 0.406) / (0.229, 0.224, 0.225)). A guess would
  be fooled by float rounding: a few pixels at -2e-8 would pick [-1, 1] and
  wash the whole picture out;
* uint8 → [0, 255], uint16 → [0, 65535], bool → [0, 1];
* floats and other integer dtypes, from the finite values: within [0, 1] →
  [0, 1]; within [-1, 1] → [-1, 1]; within [0, 255] → [0, 255]; else their
  min..max.

``value_range`` may also be ``(lo, hi)`` or ``"minmax"`` (both override the
rules above, after mean/std too). Values are clipped to the range (never
wrapped around). A pixel holding NaN or ±inf in any drawn channel is painted
``colors.NONFINITE`` (magenta, (255, 0, 255)): black or white would pass for
real pixels, and a broken normalisation must show.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._checks import check_choice
from ..errors import ConfigError, RenderError
from ..schema import IMAGE_CHANNELS, IMAGE_LAYOUTS, image_layout
from .colors import NONFINITE

ValueRange = str | tuple[float, float] | None
Stat = float | Sequence[float] | None

_CHANNELS_TEXT = ", ".join(map(str, IMAGE_CHANNELS[:-1])) + f" or {IMAGE_CHANNELS[-1]}"  # "1, 3 or 4"


def to_rgb_uint8(
    image: np.ndarray,
    *,
    layout: str | None = None,
    bgr: bool = False,
    value_range: ValueRange = None,
    mean: Stat = None,
    std: Stat = None,
) -> np.ndarray:
    """Convert one image to a new C-contiguous (H, W, 3) uint8 RGB array.

    ``mean``/``std`` (a number or one per input channel, in the input's channel
    order) undo a normalisation first: ``x * std + mean``. Alpha is dropped,
    grey is replicated, ``bgr=True`` swaps the channel order. The input is never
    modified.

    >>> to_rgb_uint8(np.array([[0.0, 0.5], [1.0, 300.0]]), value_range=(0, 255))[1, 1]
    array([255, 255, 255], dtype=uint8)
    """
    return np.array(
        rgb_view(image, layout=layout, bgr=bgr, value_range=value_range, mean=mean, std=std),
        copy=True,
        order="C",
    )


def rgb_view(
    image: np.ndarray,
    *,
    layout: str | None = None,
    bgr: bool = False,
    value_range: ValueRange = None,
    mean: Stat = None,
    std: Stat = None,
) -> np.ndarray:
    """Like ``to_rgb_uint8``, but may return a view of the input (read-only when broadcast from grey).

    The reader uses it: the renderer copies the pixels onto its canvas anyway, so
    a uint8 RGB image is never copied twice. Do not write into the result.
    """
    value_range = check_value_range(value_range)
    arr = _check_array(image)
    hwc = _as_hwc(arr, layout)
    channels = hwc.shape[2]
    # channel indices to keep, in output order: alpha dropped, BGR reversed
    idx = [0] if channels == 1 else ([2, 1, 0] if bgr else [0, 1, 2])

    fast = mean is None and std is None
    if fast and hwc.dtype == np.uint8 and (value_range is None or _same_range(value_range, 0, 255)):
        return _select(hwc, idx)
    if fast and hwc.dtype == np.bool_ and value_range is None:
        return _select(hwc, idx).view(np.uint8) * np.uint8(255)

    work = np.float64 if hwc.dtype.itemsize >= 8 else np.float32
    x: Any = _select(hwc, idx).astype(work)  # a copy, which is modified in place below
    nonfinite = _nonfinite_pixels(x) if hwc.dtype.kind == "f" else None  # of the input, before any arithmetic
    # overflow to inf is fine here: inf is clipped to white like any value above the range
    with np.errstate(over="ignore", invalid="ignore"):
        if not fast:
            m = _stat(mean, "mean", channels, 0.0)[idx]
            s = _stat(std, "std", channels, 1.0)[idx]
            x *= s.astype(work)
            x += m.astype(work)
            if value_range is None:  # the statistics say which pixels they were computed from
                value_range = (0.0, 255.0) if (m > 1).any() or (s > 1).any() else (0.0, 1.0)
        lo, hi = _resolve_range(x, value_range, hwc.dtype)
        # halves keep hi - lo from overflowing for ranges near the float64 limits
        scale = 127.5 / (hi * 0.5 - lo * 0.5)
        x *= work(scale)
        x += work(0.5 - lo * scale)  # +0.5: round to nearest when truncating below
    np.clip(x, 0.0, 255.5, out=x)
    if hwc.dtype.kind == "f" or not fast:  # NaN has no uint8 value (input NaN, or inf * 0 from a tiny scale)
        x[np.isnan(x)] = 0.0
    out = x.astype(np.uint8)
    if nonfinite is not None:
        out[nonfinite] = NONFINITE
    return out


def _nonfinite_pixels(x: np.ndarray) -> np.ndarray | None:
    """(H, W) bool map of the pixels of ``x`` holding NaN or ±inf in some channel, or None when every value is finite."""
    finite = np.isfinite(x)
    if finite.all():
        return None
    return ~finite.all(axis=2)


def _check_array(image: np.ndarray) -> np.ndarray:
    """The image as an ndarray of a drawable dtype, or RenderError."""
    try:
        arr = np.asarray(image)
    except (TypeError, ValueError) as exc:
        raise RenderError(f"image must be a numeric array, could not convert {type(image).__name__}: {exc}") from None
    if not (arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise RenderError(
            f"image must be a real numeric or bool array (uint8, uint16, int, float, bool), got dtype {arr.dtype}"
        )
    if arr.ndim not in (2, 3):
        raise RenderError(
            f"image must be 2-d (H, W) or 3-d (H, W, C) / (C, H, W), got {arr.ndim}-d shape {arr.shape}"
            + ("; pass one example, not a batch" if arr.ndim == 4 else "")
        )
    if arr.size == 0:
        raise RenderError(f"image is empty: shape {arr.shape}")
    return arr


def _as_hwc(arr: np.ndarray, layout: str | None) -> np.ndarray:
    """A (H, W, C) view of ``arr`` following ``layout`` or, when None, ``schema.image_layout``'s guess."""
    if layout is not None:
        check_choice(layout, IMAGE_LAYOUTS, "layout")
    found = image_layout(arr.shape, layout)
    if found is None:  # say why: no guess, the wrong number of dims, or the wrong number of channels
        if layout is None:
            raise RenderError(
                f"cannot guess the layout of an image of shape {arr.shape}: neither the last nor the first "
                f"dim is {_CHANNELS_TEXT} channels; pass layout='HWC' or 'CHW'"
            )
        expected_ndim = 2 if layout == "HW" else 3
        if arr.ndim != expected_ndim:
            raise RenderError(f"layout {layout!r} needs a {expected_ndim}-d image, got shape {arr.shape}")
        channels = arr.shape[2] if layout == "HWC" else arr.shape[0]
        raise RenderError(
            f"image with layout {layout!r} must have {_CHANNELS_TEXT} channels, got {channels} (shape {arr.shape})"
        )
    if found == "HW":
        return arr[:, :, None]
    return arr.transpose(1, 2, 0) if found == "CHW" else arr


def _select(hwc: np.ndarray, idx: list[int]) -> np.ndarray:
    """Channels ``idx`` of ``hwc`` as (H, W, 3): a view for RGB, broadcast for grey (read-only)."""
    if len(idx) == 1:
        return np.broadcast_to(hwc[:, :, :1], (*hwc.shape[:2], 3))
    if idx == [0, 1, 2]:
        return hwc[:, :, :3]
    return hwc[:, :, 2::-1]


def _stat(value: Stat, name: str, channels: int, default: float) -> np.ndarray:
    """``mean``/``std`` as a float64 array with one value per input channel."""
    if value is None:
        return np.full(channels, default)
    v = np.asarray(value, dtype=np.float64).reshape(-1)
    if v.size == 1:
        v = np.repeat(v, channels)
    if v.size != channels:
        raise RenderError(f"{name} has {v.size} values but the image has {channels} channels; give 1 or {channels}")
    if not np.all(np.isfinite(v)):
        raise RenderError(f"{name} must be finite, got {value!r}")
    return v


def _same_range(value_range: ValueRange, lo: float, hi: float) -> bool:
    return isinstance(value_range, tuple) and value_range == (lo, hi)


def check_stat(value: Stat, name: str) -> tuple[float, ...] | None:
    """Validate a ``mean``/``std`` option: None, a number, or one finite number per channel; as a tuple."""
    if value is None:
        return None
    try:
        v = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number or a list of {_CHANNELS_TEXT} numbers, got {value!r}") from None
    if v.size not in IMAGE_CHANNELS or not np.all(np.isfinite(v)):
        raise ConfigError(f"{name} must be a number or a list of {_CHANNELS_TEXT} finite numbers, got {value!r}")
    return tuple(float(x) for x in v)


def check_value_range(value_range: ValueRange) -> ValueRange:
    """Validate a ``value_range`` option: None, ``"minmax"`` or a finite ``(lo, hi)`` with lo < hi."""
    if value_range is None or value_range == "minmax":
        return value_range
    if isinstance(value_range, str):
        raise ConfigError(f"value_range must be None, 'minmax' or (low, high), got {value_range!r}")
    try:
        lo, hi = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise ConfigError(f"value_range must be None, 'minmax' or (low, high), got {value_range!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ConfigError(f"value_range (low, high) must be finite with low < high, got {value_range!r}")
    return (lo, hi)


def _resolve_range(x: np.ndarray, value_range: ValueRange, dtype: np.dtype) -> tuple[float, float]:
    """The (lo, hi) that maps to (0, 255), following the rule in the module docstring (after mean/std)."""
    if isinstance(value_range, tuple):
        return value_range
    if value_range is None:
        if dtype == np.uint8:
            return 0.0, 255.0
        if dtype == np.uint16:
            return 0.0, 65535.0
        if dtype == np.bool_:
            return 0.0, 1.0
    lo, hi = _finite_min_max(x)
    if value_range is None:
        if lo >= 0 and hi <= 1:
            return 0.0, 1.0
        if lo >= -1 and hi <= 1:
            return -1.0, 1.0
        if lo >= 0 and hi <= 255:
            return 0.0, 255.0
    if not hi > lo:  # constant image: draw it black rather than divide by zero
        hi = lo + max(1.0, abs(lo))  # (lo + 1 == lo for |lo| >= 2**53)
    return lo, hi


def _finite_min_max(x: np.ndarray) -> tuple[float, float]:
    """Min and max of the finite values of ``x`` ((0, 1) if there are none)."""
    lo, hi = float(x.min()), float(x.max())
    if np.isfinite(lo) and np.isfinite(hi):
        return lo, hi
    finite = x[np.isfinite(x)]
    if finite.size == 0:
        return 0.0, 1.0
    return float(finite.min()), float(finite.max())
