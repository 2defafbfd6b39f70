"""Finished stages at work: loaded and checked, evaluated, predicting, exported; and the Python API
(``graft.load_spec``, ``plan``, ``run``, ``load_stage``)."""
