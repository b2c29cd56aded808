"""Class ids: how one is read from an array, and the name it is shown as.

Box labels, ``labels`` and ``pred_labels`` may come as ints, bools or floats
(detection APIs return float classes): floats are rounded to the nearest id and
NaN/inf become ``NO_CLASS``, which is drawn as "?". Class maps (``masks``) have
their own reading rule in ``masks.read_class_map``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import RenderError

#: The id of a class that could not be read (NaN/inf in a float array); never a real class.
NO_CLASS: int = int(np.iinfo(np.int64).min)


def class_ids(values: Any, name: str) -> np.ndarray:
    """Class ids as int64: ints and bools as they are, floats rounded, NaN/inf → ``NO_CLASS``.

    >>> class_ids(np.array([1.0, 2.6, np.nan]), "box_labels").tolist() == [1, 3, NO_CLASS]
    True
    """
    a = np.asarray(values)
    if a.dtype == np.bool_ or np.issubdtype(a.dtype, np.integer):
        return a.astype(np.int64)
    if np.issubdtype(a.dtype, np.floating):
        finite = np.isfinite(a)
        return np.where(finite, np.rint(np.clip(np.where(finite, a, 0), -(2.0**62), 2.0**62)), NO_CLASS).astype(
            np.int64
        )
    raise RenderError(f"field '{name}' must hold integer class ids, got dtype {a.dtype}")


def class_name(class_id: int, names: Sequence[str] | None) -> str:
    """The name of ``class_id`` in ``names``, the id itself when out of range, "?" for ``NO_CLASS``.

    >>> class_name(1, ("cat", "dog")), class_name(7, ("cat", "dog")), class_name(NO_CLASS, None)
    ('dog', '7', '?')
    """
    if class_id == NO_CLASS:
        return "?"
    if names is not None and 0 <= class_id < len(names):
        return names[class_id]
    return str(class_id)
