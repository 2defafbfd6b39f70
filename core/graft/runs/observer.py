"""Watch a run without patching Keras: pass a ``RunObserver`` to ``run_spec``.

```python
class Watch(RunObserver):
    def before_fit(self, stage, round, built):
        print(stage.name, round, [info.name for info in built.layers if info.layer.trainable])

run_spec(spec_file, registry, "runs/demo", observer=Watch())
```
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from graft.model.builder import BuiltModel
    from graft.records.report import StageReport
    from graft.spec.records import Stage


class RunObserver:
    """Hooks called by the runner; every method does nothing unless overridden."""

    def before_fit(self, stage: Stage, round: int, built: BuiltModel) -> None:
        """Just before ``fit``: the stage's whole model with this round's decisions applied and
        compiled, its layers at their starting weights (also when ``fit`` trains only the heads
        on cached features)."""

    def after_fit(self, stage: Stage, round: int, built: BuiltModel) -> None:
        """Just after ``fit`` returned, before the frozen layers are verified."""

    def keras_callbacks(self) -> list[Any]:
        """Extra ``keras.callbacks.Callback`` objects passed to every ``fit`` (after the stage's own)."""
        return []

    def stage_published(self, report: StageReport) -> None:
        """A stage's folder is in place; ``report`` is what its ``report.json`` says."""
