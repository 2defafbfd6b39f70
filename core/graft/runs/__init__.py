"""Running a spec: vet everything, then per stage build, decide, load by name, train, verify, publish; resume,
provenance, the multi-worker roles."""
