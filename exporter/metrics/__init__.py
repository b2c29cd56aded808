"""Numbers beside the pictures, accumulated shard by shard with bounded memory.

* ``classification``: accuracy, top-k accuracy, confusion matrix and PR-curve counts of one step.
"""
