"""Masks over an image: semantic class maps in per-class colours, and one box's instance mask in its colour.

A class map is read once (``read_class_map``: (H, W) int64 class ids, ``NO_CLASS``
where a float map holds NaN/inf) and blended by ``blend_into``; ``blend_mask``
does both for a caller with a plain array. ``instance_into`` draws one (h, w)
bool instance mask: blended in one colour, outlined solid or dashed.
"""

from __future__ import annotations

import numpy as np

from .._checks import check_number
from ..errors import RenderError
from .classes import NO_CLASS
from .colors import BLACK, Color, class_colors


def blend_mask(
    rgb: np.ndarray,
    mask: np.ndarray,
    *,
    alpha: float = 0.5,
    background: int | None = 0,
    outline: bool = False,
) -> np.ndarray:
    """Return a new (H, W, 3) uint8 image: ``rgb`` with the class map ``mask`` blended over it.

    Pixels of class ``background`` are left alone (None draws every class);
    ``outline=True`` also paints the class boundary pixels opaque. A mask of
    another size is resized to the image (nearest neighbour). Non-finite values
    in a float mask count as background.

    >>> img = np.zeros((2, 2, 3), np.uint8)
    >>> blend_mask(img, np.array([[0, 1], [1, 1]]), alpha=1.0)[0].tolist()
    [[0, 0, 0], [45, 135, 45]]
    """
    out = np.array(rgb, dtype=np.uint8, copy=True)
    if out.ndim != 3 or out.shape[2] != 3:
        raise RenderError(f"rgb must be an (H, W, 3) uint8 image, got shape {out.shape}")
    blend_into(out, read_class_map(mask, "mask"), alpha=alpha, background=background, outline=outline)
    return out


def check_alpha(alpha: float, name: str = "mask alpha") -> float:
    """``alpha`` as a float in [0, 1], or ConfigError."""
    return check_number(alpha, name, minimum=0, maximum=1)


def read_class_map(mask: np.ndarray, name: str) -> np.ndarray:
    """``mask`` as a new (H, W) int64 class map; NaN/inf in a float map become ``NO_CLASS`` (never drawn).

    (H, W, 1) and (1, H, W) are squeezed. Float ids are truncated toward zero
    (box and example labels are rounded instead: ``classes.class_ids``).
    """
    try:
        m = np.asarray(mask)
    except (TypeError, ValueError) as exc:
        raise RenderError(f"{name} must be an (H, W) integer class map: {exc}") from None
    if m.ndim == 3 and 1 in (m.shape[0], m.shape[2]):
        m = m.reshape(m.shape[1:] if m.shape[0] == 1 else m.shape[:2])
    if m.ndim != 2 or m.size == 0:
        raise RenderError(f"{name} must be a non-empty 2-d (H, W) class map, got shape {m.shape}")
    if m.dtype == np.bool_ or np.issubdtype(m.dtype, np.integer):
        return m.astype(np.int64)
    if np.issubdtype(m.dtype, np.floating):
        finite = np.isfinite(m)
        classes = np.where(finite, np.clip(m, -(2.0**62), 2.0**62), 0).astype(np.int64)
        if not finite.all():
            classes[~finite] = NO_CLASS  # set after the cast: a float16 map cannot hold the sentinel
        return classes
    raise RenderError(f"{name} must hold integer class ids, got dtype {m.dtype}")


def blend_into(
    region: np.ndarray,
    classes: np.ndarray,
    *,
    alpha: float,
    background: int | None,
    outline: bool,
    outline_width: int = 1,
) -> None:
    """Blend the class map ``classes`` (from ``read_class_map``) into the uint8 ``region`` in place."""
    a = round(check_alpha(alpha) * 256)
    h, w = region.shape[:2]
    classes = resize_nearest(classes, h, w)
    drawn = classes != NO_CLASS
    if background is not None:
        drawn &= classes != background
    if a > 0:
        colors = class_colors(classes[drawn]).astype(np.uint16)
        px = region[drawn].astype(np.uint16)
        region[drawn] = ((px * (256 - a) + colors * a + 128) >> 8).astype(np.uint8)
    if outline:
        keyed = np.where(drawn, classes, NO_CLASS)  # background differs from every class
        edge = boundary(keyed) & drawn
        if outline_width > 1:
            edge = _thicken(edge, keyed, outline_width - 1)
        region[edge] = class_colors(classes[edge])


def outline_dashed_into(
    region: np.ndarray, classes: np.ndarray, *, background: int | None, width: int, dash: int
) -> None:
    """Draw the class boundaries of ``classes`` into ``region`` in place, dashed: class colour on black.

    Dashed as gt boxes are, so a gt outline over a predicted fill reads as ground truth.
    The outline runs ``width`` pixels inside each class region; dashes are ``dash`` long.
    """
    h, w = region.shape[:2]
    classes = resize_nearest(classes, h, w)
    drawn = classes != NO_CLASS
    if background is not None:
        drawn &= classes != background
    keyed = np.where(drawn, classes, NO_CLASS)
    edge = boundary(keyed) & drawn
    if width > 1:
        edge = _thicken(edge, keyed, width - 1)
    ys, xs = np.nonzero(edge)
    on = ((xs + ys) // max(1, dash)) % 2 == 0  # along a row or a column: dashes of ``dash`` pixels
    region[ys[on], xs[on]] = class_colors(classes[ys[on], xs[on]])
    region[ys[~on], xs[~on]] = 0


def instance_into(
    region: np.ndarray,
    mask: np.ndarray,
    color: Color,
    *,
    alpha: float,
    outline_width: int,
    dash: int | None = None,
) -> None:
    """Draw one bool instance mask into the uint8 ``region`` in place, in ``color``.

    The mask is resized to the region (nearest neighbour, as ``resize_nearest``);
    ``alpha`` > 0 blends ``color`` over its pixels; its boundary (inside the mask,
    the image edge included) is painted ``outline_width`` pixels thick (0: none),
    solid, or with ``dash`` dashes of ``color`` on black, as gt outlines are drawn.
    Only the mask's bounding rectangle is resized, so small instances on a big
    image cost little.
    """
    h, w = region.shape[:2]
    rows = np.arange(h) * mask.shape[0] // h
    cols = np.arange(w) * mask.shape[1] // w
    ys = np.flatnonzero(np.any(mask, axis=1)[rows])
    xs = np.flatnonzero(np.any(mask, axis=0)[cols])
    if ys.size == 0:
        return
    y0, y1, x0, x1 = ys[0], ys[-1] + 1, xs[0], xs[-1] + 1
    inside = mask[rows[y0:y1, None], cols[None, x0:x1]]
    sub = region[y0:y1, x0:x1]
    a = round(check_alpha(alpha) * 256)
    if a > 0:
        px = sub[inside].astype(np.uint16)
        sub[inside] = ((px * (256 - a) + np.array(color, np.uint16) * a + 128) >> 8).astype(np.uint8)
    if outline_width <= 0:
        return
    keyed = np.pad(inside, 1).astype(np.int8)  # outside the rectangle is outside the mask, and so is the image edge
    edge = boundary(keyed) & (keyed == 1)
    if outline_width > 1:
        edge = _thicken(edge, keyed, outline_width - 1)
    edge = edge[1:-1, 1:-1]
    if dash is None:
        sub[edge] = color
        return
    ey, ex = np.nonzero(edge)
    on = ((ex + x0 + ey + y0) // max(1, dash)) % 2 == 0  # the same dash pattern as ``outline_dashed_into``
    sub[ey[on], ex[on]] = color
    sub[ey[~on], ex[~on]] = BLACK


def resize_nearest(a: np.ndarray, h: int, w: int) -> np.ndarray:
    """Resize a 2-d array to (h, w) by nearest neighbour (a no-op when the size already matches)."""
    if a.shape == (h, w):
        return a
    rows = np.arange(h) * a.shape[0] // h
    cols = np.arange(w) * a.shape[1] // w
    return a[rows[:, None], cols[None, :]]


def boundary(classes: np.ndarray) -> np.ndarray:
    """Bool map of pixels whose 4-neighbourhood holds another class."""
    edge = np.zeros(classes.shape, dtype=bool)
    dx = classes[:, 1:] != classes[:, :-1]
    dy = classes[1:, :] != classes[:-1, :]
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    edge[1:, :] |= dy
    edge[:-1, :] |= dy
    return edge


def _thicken(edge: np.ndarray, keyed: np.ndarray, steps: int) -> np.ndarray:
    """Grow ``edge`` by ``steps`` pixels into the same class, so outlines stay visible on big images."""
    same_x = keyed[:, 1:] == keyed[:, :-1]
    same_y = keyed[1:, :] == keyed[:-1, :]
    for _ in range(steps):
        grown = edge.copy()
        grown[:, 1:] |= edge[:, :-1] & same_x
        grown[:, :-1] |= edge[:, 1:] & same_x
        grown[1:, :] |= edge[:-1, :] & same_y
        grown[:-1, :] |= edge[1:, :] & same_y
        edge = grown
    return edge
