"""A tiny two-stage spec and a search space over its second stage, shared by the sweep tests."""

from __future__ import annotations

import textwrap

SPEC = """\
seed: 3
model:
  input_shape: [10, 2]
  extractor:
    plugin: gru
    params:
      layers:
        - {name: gru_1, units: 4}
        - {name: gru_2, units: 4}
  heads:
    trend:
      plugin: dense
      loss: sparse_categorical_crossentropy
      metrics: [accuracy]
      params: {units: 3, activation: softmax}
stages:
  - name: pretrain
    data:
      source: synthetic
      params: {samples: 32, timesteps: 10, channels: 2, seed: 1, targets: {trend: trend}}
    epochs: 1
    batch_size: 16
  - name: transfer
    init: {stage: pretrain}
    data:
      source: synthetic
      params: {samples: 32, timesteps: 10, channels: 2, seed: 2, frequency: 2.0, targets: {trend: trend}}
    epochs: 2
    batch_size: 16
    optimizer: {name: adam, learning_rate: 0.001}
    policy:
      plugin: fine_tune_top
      params: {layers: 1}
"""

SPACE = """\
stage: transfer
trials: {trials}
metric: val_loss
pruner: none
params:
  stages.transfer.optimizer.learning_rate: {{loguniform: [1.0e-4, 1.0e-1]}}
  stages.transfer.policy.params.layers: {{int: [1, 2]}}
"""


def write(folder, trials: int = 3, space: str | None = None) -> tuple[str, str]:
    """The spec and a search space of ``trials`` trials (or ``space``) in ``folder``; their paths."""
    spec, searched = folder / "spec.yaml", folder / "space.yaml"
    spec.write_text(SPEC)
    searched.write_text(textwrap.dedent(space) if space is not None else SPACE.format(trials=trials))
    return str(spec), str(searched)
