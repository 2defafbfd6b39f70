"""graft.add_plan_note: a plugin's line under each stage of ``graft plan``, kept in the report's plan."""

from __future__ import annotations

import pytest

import graft
from graft.planning.stageplan import StagePlan
from graft.planning.view import render_text
from graft.plugins.plannotes import plan_notes


class Model:
    """Any object a hook returns stands in for a keras.Model here: notes are kept per object."""


def test_notes_are_kept_per_model_in_order_whitespace_collapsed():
    first, second = Model(), Model()
    graft.add_plan_note(first, "one\n   line")
    graft.add_plan_note(first, "two")
    assert plan_notes(first) == ("one line", "two")
    assert plan_notes(second) == ()
    assert plan_notes(3) == ()  # not weakly referenceable: no notes


@pytest.mark.parametrize("text", ["", "   ", None, 3])
def test_a_note_is_a_non_empty_string(text):
    with pytest.raises(ValueError, match="a plan note is a non-empty string"):
        graft.add_plan_note(Model(), text)


def test_graft_plan_shows_the_notes_and_the_report_keeps_them():
    plan = StagePlan("top", "continue", None, (), 3, 3, {"label": (1,)}, notes=("keras_app: VGG16", "second"))
    text = render_text([plan])
    assert text.splitlines()[:3] == [
        "stage 1/1 'top': policy continue, starts from fresh initialisation",
        "  note: keras_app: VGG16",
        "  note: second",
    ]
    assert plan.to_json()["notes"] == ["keras_app: VGG16", "second"]
    assert StagePlan.from_json(plan.to_json()) == plan
    older = {key: value for key, value in plan.to_json().items() if key != "notes"}  # a report written before notes
    assert StagePlan.from_json(older).notes == ()
