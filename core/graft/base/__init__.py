"""The ground every wing stands on: problems at YAML paths, the one gate to Keras, durable files, tables
and memory checks.  Knows nothing of specs, models or runs."""
