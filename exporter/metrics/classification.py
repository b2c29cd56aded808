"""Classification metrics of one step: accuracy, top-k accuracy, confusion matrix, PR-curve counts.

Fed shard by shard (``add``) from the small fields in ``FIELDS``, so a step of
any size costs a (K, K) matrix and (K, thresholds) counts at most.

>>> m = ClassificationMetrics(topk=5)
>>> m.add({"labels": np.array([0, 1, 1]), "pred_labels": np.array([0, 1, 0])})
>>> m.correct, m.total
(2, 3)
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..tensorboard import PRCurveCounts

#: Fields the metrics read; small, so a step's worth is kept as counts at most.
FIELDS = ("labels", "pred_labels", "probs")
#: Most classes a confusion matrix and PR curves are kept for: class ids come from shards, and a (K, K)
#: count matrix for an id of 10**9 (or 10**5 class names) would not fit in memory.
MAX_CLASSES = 1000


class ClassificationMetrics:
    """Accuracy, top-k, confusion matrix and PR counts of one step, summed shard by shard."""

    def __init__(self, topk: int):
        self.topk = topk
        self.total = 0
        self.correct = 0
        self.topk_total = 0
        self.topk_correct = 0
        self.confusion = np.zeros((0, 0), np.int64)
        self.classes_seen = 0  # 1 + the largest class id seen, kept even beyond MAX_CLASSES
        self.pr = PRCurveCounts()

    def add(self, a: Mapping[str, np.ndarray]) -> None:
        labels = a.get("labels")
        if labels is None:
            return
        labels = labels.astype(np.int64)
        probs = a.get("probs")
        pred = a.get("pred_labels")
        if pred is None and probs is not None:
            pred = probs.argmax(axis=1)
        if pred is not None:
            pred = pred.astype(np.int64)
            self.total += len(labels)
            self.correct += int((pred == labels).sum())
            # Python ints: an id of 2**63 - 1 plus one must not wrap around
            k = max(self.confusion.shape[0], int(labels.max(initial=-1)) + 1, int(pred.max(initial=-1)) + 1)
            k = max(k, probs.shape[1] if probs is not None else 0)
            self.classes_seen = max(self.classes_seen, k)
            if k <= MAX_CLASSES:
                if k > self.confusion.shape[0]:
                    grow = k - self.confusion.shape[0]
                    self.confusion = np.pad(self.confusion, ((0, grow), (0, grow)))
                ok = (labels >= 0) & (pred >= 0)
                np.add.at(self.confusion, (labels[ok], pred[ok]), 1)
        if probs is not None and probs.shape[1] > 0:
            n, kk = probs.shape
            if self.topk < kk:
                known = (labels >= 0) & (labels < kk)
                true_p = probs[np.arange(n), np.where(known, labels, 0)]
                rank = (probs > true_p[:, None]).sum(axis=1)  # classes scored above the true one
                self.topk_total += n
                self.topk_correct += int(((rank < self.topk) & known).sum())
            if kk <= MAX_CLASSES:  # (K, thresholds) counts: bounded like the confusion matrix
                self.pr.add(probs, labels)
