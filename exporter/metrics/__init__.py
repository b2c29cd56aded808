"""Evaluation metrics computed from predictions and ground truth, in pure numpy.

Modules:

* ``detection``: COCO-style box and instance-mask AP/AR (``DetectionEvaluator``),
  equal to pycocotools' ``COCOeval`` without needing pycocotools;
* ``segmentation``: pixel accuracy and IoU of semantic class maps from one
  confusion matrix (``SegmentationEvaluator``).

Every evaluator is an accumulator: add one image at a time, then ask for a
frozen result record. A value that cannot be measured (no ground truth for a
class or an area range, no pixels) is ``-1.0``, pycocotools' convention.
"""
