"""A run told for people: ``report.md``, each stage's ``curves.png`` and the summary table, written from what
is on disk (no TensorFlow)."""
