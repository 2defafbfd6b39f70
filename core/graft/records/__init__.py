"""What a run keeps on disk and reads back strictly: the run directory (one run at a time, stages published
whole, files proven by digest) and each stage's ``report.json`` records."""
