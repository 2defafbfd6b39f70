"""The runner's proof that a stage published its adapted layers' weights plus the adapters' update
(``graft.runs.verify.verify_merged``), on arrays: it passes the true merge and fires on any other."""

from __future__ import annotations

import numpy as np
import pytest

from graft.model.adapters import AdapterWeights
from graft.records.rundir import RunError
from graft.runs.verify import verify_merged

RNG = np.random.default_rng(0)
KERNEL, BIAS = RNG.normal(size=(4, 6)).astype(np.float32), RNG.normal(size=(6,)).astype(np.float32)
A, B = RNG.normal(size=(4, 2)).astype(np.float32), RNG.normal(size=(2, 6)).astype(np.float32)
ADAPTER = {"dense": AdapterWeights("dense", 2, 3.0, {"kernel": (A, B)}, {"kernel": 0})}
START = {"dense": [KERNEL, BIAS]}


def test_the_true_merge_passes():
    verify_merged(START, {"dense": [KERNEL + 1.5 * A @ B, BIAS]}, ADAPTER, "transfer")


@pytest.mark.parametrize(
    "end",
    [
        [KERNEL, BIAS],  # not merged
        [KERNEL + 3.0 * A @ B, BIAS],  # alpha instead of alpha / rank
        [KERNEL + 1.5 * A @ B, np.nextafter(BIAS, np.float32(np.inf))],  # the bias moved, however little
    ],
    ids=["unmerged", "wrong-scale", "bias-moved"],
)
def test_any_other_weights_are_refused(end):
    with pytest.raises(RunError, match="stage 'transfer': adapted layer 'dense' does not hold its weights plus"):
        verify_merged(START, {"dense": end}, ADAPTER, "transfer")
