"""Data: what reaches ``fit`` and how it is checked first (checks, the pipeline, augmentation, files).

``Dataset`` and ``Stream``, what a data source returns, are part of the plugin contract
(``graft.plugins.datasets``); they are importable from here too, as from the module ``graft.data`` of 0.1.
"""

from graft.plugins.datasets import Dataset, Stream

__all__ = ["Dataset", "Stream"]
