"""Randomly damaged .npz files give a Dataset or a SpecProblem, never another exception."""

from __future__ import annotations

import io

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graft.base.problems import SpecProblem
from graft.builtins.npz import Npz, NpzParams
from graft.validators import loading_spec_in


def archive(compressed: bool) -> bytes:
    buffer = io.BytesIO()
    save = np.savez_compressed if compressed else np.savez
    save(buffer, x=np.arange(24, dtype=np.float32).reshape(6, 4), y=np.arange(6) % 2)
    return buffer.getvalue()


ARCHIVES = {compressed: archive(compressed) for compressed in (False, True)}
EDITS = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=6)


@settings(
    derandomize=True, max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(compressed=st.booleans(), edits=EDITS, cut=st.none() | st.integers(0, 10**6), split=st.sampled_from([0.0, 0.5]))
def test_damaged_archives_give_problems_not_exceptions(tmp_path, compressed, edits, cut, split):
    data = bytearray(ARCHIVES[compressed])
    for position, value in edits:
        data[position % len(data)] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    (tmp_path / "d.npz").write_bytes(bytes(data))
    with loading_spec_in(str(tmp_path)):
        params = NpzParams(path="d.npz", targets={"t": "y"}, validation_split=split)
    try:
        Npz().load_data(params, str(tmp_path))
    except SpecProblem as problem:
        assert all(message for _, message in problem.items)
