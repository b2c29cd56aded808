"""The one place a TensorBoard tag, and a file name derived from an example id, is named.

Tag layout::

    {prefix}/{id}                 one rendered example (prefix defaults to "examples")
    {prefix}_grid                 a grid of the first examples of a step
    metrics/accuracy              top-1 accuracy of a step
    metrics/top{k}_accuracy       top-k accuracy of a step
    metrics/confusion_matrix      the confusion matrix of a step, as an image
    pr_curve/{class name}         one precision-recall curve per class

A per-example tag must be the same at every checkpoint so TensorBoard's step
slider shows the same example evolving. ``{id}`` comes from the ``ids`` field
when a shard has one (str or int); otherwise it is ``ex{index:05d}``, where
``index`` is the example's position within its step (shard order, then row) —
stable as long as the eval input order is deterministic.

Ids are sanitised into one component that is both a tag part and a file name:
``[A-Za-z0-9_.-]`` is kept, anything else becomes ``_``, a run of leading or
trailing dots becomes ``_``, the length is capped, and names that are special
somewhere (Windows device names, ``grid``) are avoided. Whenever anything was
changed, ``-`` and 8 hex digits of a hash of the original id are appended, so
two distinct ids stay distinct. The component never holds ``/``, ``\\``, NUL,
is never empty, ``.`` or ``..``, so a file named after it stays in its folder.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from .errors import ConfigError

DEFAULT_PREFIX = "examples"
MAX_ID_LENGTH = 80
HASH_CHARS = 8

ACCURACY_TAG = "metrics/accuracy"
CONFUSION_MATRIX_TAG = "metrics/confusion_matrix"
PR_CURVE_PREFIX = "pr_curve"

#: File name of a step's grid in ``render()`` output; an example id can never produce it.
GRID_FILENAME = "grid.png"
EXAMPLE_SUFFIX = ".png"

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_EDGE_DOTS = re.compile(r"^\.+|\.+$")
_PREFIX = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
# Stems Windows refuses whatever the extension, plus the grid's own file name.
_RESERVED = frozenset(
    ["con", "prn", "aux", "nul", "grid"]
    + [f"com{i}" for i in range(10)]
    + [f"lpt{i}" for i in range(10)]
)


def _digest(text: str) -> str:
    data = text.encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=HASH_CHARS // 2).hexdigest()


def _clean(text: str, max_length: int) -> tuple[str, bool]:
    """Sanitised text (at most ``max_length`` characters) and whether anything had to change."""
    clean = _UNSAFE.sub("_", text)
    clean = _EDGE_DOTS.sub("_", clean)
    if not clean:
        clean = "_"
    if clean.split(".", 1)[0].lower() in _RESERVED:
        clean = "_" + clean
    if len(clean) > max_length:
        clean = _EDGE_DOTS.sub("_", clean[:max_length])
    return clean, clean != text


def sanitize(text: str, *, max_length: int = MAX_ID_LENGTH) -> str:
    """One safe tag component / file stem for ``text``; a hash is appended when it had to change.

    >>> sanitize("img_0001.jpg")
    'img_0001.jpg'
    >>> sanitize("../../etc/passwd")
    '__.._etc_passwd-830a08e2'
    """
    if not isinstance(text, str):
        raise ConfigError(f"expected a str to sanitise, got {type(text).__name__}")
    clean, changed = _clean(text, max_length)
    if not changed:
        return clean
    return f"{clean[: max_length - HASH_CHARS - 1]}-{_digest(text)}"


def id_text(example_id: str | int | np.integer | np.str_) -> str:
    """The id as text: ints in decimal, text as is (bytes are decoded as UTF-8)."""
    if isinstance(example_id, (bool, np.bool_)):
        raise ConfigError(f"example ids are ints or text, got a bool ({example_id!r})")
    if isinstance(example_id, (int, np.integer)):
        return str(int(example_id))
    if isinstance(example_id, bytes):
        return example_id.decode("utf-8", "replace")
    if isinstance(example_id, str):
        return str(example_id)
    raise ConfigError(f"example ids are ints or text, got {type(example_id).__name__} ({example_id!r})")


def default_id(index: int) -> str:
    """The id of an example without ``ids``: its position within its step."""
    return f"ex{int(index):05d}"


def example_name(example_id: str | int | None, index: int) -> str:
    """The sanitised name of one example: from its id, or ``ex{index:05d}`` when it has none."""
    if example_id is None:
        return default_id(index)
    return sanitize(id_text(example_id))


def check_prefix(prefix: str) -> str:
    """A tag prefix is one or more safe components joined by ``/``."""
    if not isinstance(prefix, str) or not _PREFIX.match(prefix):
        raise ConfigError(
            f"tag prefix must be letters, digits, '_', '.', '-' parts joined by '/', e.g. 'examples' "
            f"or 'eval/examples', got {prefix!r}"
        )
    return prefix


def example_tag(prefix: str, example_id: str | int) -> str:
    """The tag of one example, the same at every step.

    >>> example_tag("examples", "cat/001.jpg")
    'examples/cat_001.jpg-76f465cb'
    >>> example_tag("examples", 7)
    'examples/7'
    """
    return name_tag(prefix, sanitize(id_text(example_id)))


def name_tag(prefix: str, name: str) -> str:
    """The tag of an example whose name was already made (``example_name`` / ``UniqueNames``)."""
    return f"{check_prefix(prefix)}/{name}"


def grid_tag(prefix: str = DEFAULT_PREFIX) -> str:
    return f"{check_prefix(prefix)}_grid"


def topk_tag(k: int) -> str:
    return f"metrics/top{int(k)}_accuracy"


def file_stem(name: str) -> str:
    """The file stem of an example's name: the name itself, plus a hash when it has capital letters.

    Names (and tags) keep their case: ``A`` and ``a`` are two examples. File
    systems that fold case (macOS and Windows by default) would store their
    files as one, so a name with a capital letter gets ``-`` and 8 hex digits
    of its hash; all-lowercase names, the common case, keep their file names.

    >>> file_stem("cat_001"), file_stem("Cat_001")
    ('cat_001', 'Cat_001-3221cdc1')
    """
    if name == name.lower():
        return name
    return f"{name[: MAX_ID_LENGTH - HASH_CHARS - 1]}-{_digest(name)}"


def safe_filename(example_id: str | int, suffix: str = "") -> str:
    """A file name for an example that cannot leave its folder (no separators, never ``..``),
    distinct from every other example's even where the file system folds case.

    >>> safe_filename("../../etc/passwd", ".png")
    '__.._etc_passwd-830a08e2.png'
    """
    if suffix and not re.match(r"^\.[A-Za-z0-9]{1,8}$", suffix):
        raise ConfigError(f"file suffix must look like '.png', got {suffix!r}")
    return file_stem(sanitize(id_text(example_id))) + suffix


def pr_curve_tags(num_classes: int, class_names: Sequence[str] | None = None) -> list[str]:
    """One distinct ``pr_curve/<name>`` tag per class; unnamed classes are ``class_<k>``.

    Class names are all known up front, so a clash after sanitising is resolved
    with the class index rather than a hash (``pr_curve/traffic_light``).
    """
    tags: list[str] = []
    used: set[str] = set()
    for k in range(num_classes):
        name = class_names[k] if class_names is not None and k < len(class_names) else f"class_{k}"
        clean, _ = _clean(str(name), MAX_ID_LENGTH)
        candidate = clean
        while candidate.lower() in used:
            candidate = f"{clean}-{k}" if candidate == clean else candidate + "_"
        used.add(candidate.lower())
        tags.append(f"{PR_CURVE_PREFIX}/{candidate}")
    return tags


class UniqueNames:
    """Hands out per-step names that never clash.

    The first example with a name keeps it; a later one with the same name (a
    duplicated id) gets ``-dup<index>`` so no image overwrites another. The
    order is the step's example order, so those names are as stable as that
    order. Names differing only in case are different names (and tags):
    ``file_stem`` keeps their files apart where the file system folds case.
    """

    def __init__(self) -> None:
        self._used: set[str] = set()
        self.duplicates = 0

    def take(self, name: str, index: int) -> str:
        candidate = name
        while candidate in self._used:
            candidate = f"{name}-dup{int(index):05d}" if candidate == name else candidate + "_"
        if candidate != name:
            self.duplicates += 1
        self._used.add(candidate)
        return candidate
