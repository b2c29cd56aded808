"""Numbers beside the pictures, computed from predictions and ground truth in pure numpy.

Modules:

* ``classification``: accuracy, top-k accuracy, confusion matrix and PR-curve counts of one step;
* ``detection``: COCO-style box and instance-mask AP/AR (``DetectionEvaluator``),
  equal to pycocotools' ``COCOeval`` without needing pycocotools;
* ``segmentation``: pixel accuracy and IoU of semantic class maps from one
  confusion matrix (``SegmentationEvaluator``);
* ``images``: a shard's boxes image by image, in pixel xyxy whatever the box
  format (the renderer's converter), and the per-image matches, AP and IoU the
  detector selections rank and filter by (``ImageStats``);
* ``step``: what the export computes per step: each shard measured where it is
  loaded (``measure_shard``), the evaluators merged in shard order (``StepMetrics``).

Every evaluator is an accumulator, fed shard by shard or image by image with
bounded memory, then asked for its result. A value that cannot be measured
(no ground truth for a class or an area range, no pixels) is ``-1.0``,
pycocotools' convention.
"""
