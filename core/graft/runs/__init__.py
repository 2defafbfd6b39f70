"""Running a spec: every stage planned and checked first, then trained, verified and published, resumed
where it stopped; the run's provenance and its multi-worker roles."""
