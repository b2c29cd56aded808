"""How a class id is read and the name it shows as."""

from __future__ import annotations

import numpy as np
import pytest

from exporter.errors import RenderError
from exporter.render.classes import NO_CLASS, class_ids, class_name


@pytest.mark.parametrize(
    "values, expected",
    [
        (np.array([0, 3, -1], np.int32), [0, 3, -1]),
        (np.array([True, False]), [1, 0]),
        (np.array([1.0, 2.4, 2.6, -0.6]), [1, 2, 3, -1]),  # floats are rounded
        (np.array([np.nan, np.inf, -np.inf], np.float32), [NO_CLASS] * 3),
        (np.array([1e30]), [2**62]),  # huge floats are clipped, not wrapped
        (np.float32(4.0), 4),
    ],
)
def test_class_ids(values, expected):
    got = class_ids(values, "box_labels")
    assert got.dtype == np.int64 and got.tolist() == expected


def test_class_ids_refuse_what_is_no_number():
    with pytest.raises(RenderError, match="field 'labels' must hold integer class ids, got dtype <U3"):
        class_ids(np.array(["cat"]), "labels")


@pytest.mark.parametrize(
    "class_id, names, expected",
    [(0, ("cat", "dog"), "cat"), (1, ("cat", "dog"), "dog"), (2, ("cat", "dog"), "2"), (-1, ("cat",), "-1"),
     (3, None, "3"), (NO_CLASS, ("cat",), "?")],
)  # fmt: skip
def test_class_name(class_id, names, expected):
    assert class_name(class_id, names) == expected
