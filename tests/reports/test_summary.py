"""The end-of-run table."""

from graft.planning.stageplan import StagePlan
from graft.records.report import StageReport
from graft.reports.summary import summary_table


def report(stage, policy, init, trainable, epochs, **final):
    return StageReport(
        stage=stage,
        fingerprint="0" * 16,
        plan=StagePlan(stage, policy, init, (), trainable_params=trainable, total_params=trainable, outputs={}),
        load={},
        verification={},
        final_metrics=final,
        epochs_run=epochs,
        features_cached=False,
        lineage={},
        wall_time_s=1.0,
        versions={},
    )


def test_held_out_metrics_are_shown_per_stage():
    table = summary_table(
        [
            report("pretrain", "continue", None, 4580, 3, loss=0.5, val_loss=0.25, val_accuracy=0.9),
            report("transfer", "layers", "stage pretrain", 1700, 2, loss=0.4, val_loss=0.125, val_accuracy=0.95),
        ]
    ).splitlines()
    assert table[0].split() == ["stage", "policy", "starts", "from", "trainable", "epochs", "val_loss", "val_accuracy"]
    assert table[1].split() == ["pretrain", "continue", "fresh", "4,580", "3", "0.2500", "0.9000"]
    assert table[2].split() == ["transfer", "layers", "stage", "pretrain", "1,700", "2", "0.1250", "0.9500"]


def test_training_metrics_stand_in_where_a_stage_has_no_validation_data():
    table = summary_table(
        [report("a", "continue", None, 10, 1, loss=0.5), report("b", "continue", None, 10, 1, val_loss=0.25)]
    ).splitlines()
    assert table[0].split()[-2:] == ["loss", "val_loss"]
    assert table[1].split()[-2:] == ["0.5000", "-"]
    assert table[2].split()[-2:] == ["-", "0.2500"]
