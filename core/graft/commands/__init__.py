"""The ``graft`` command line: one module per command family; TensorFlow only for commands that need a model."""
