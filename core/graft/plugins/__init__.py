"""The plugin boundary: the hook specs (the plugin author's manual), the types that cross them (layers and
decisions, rounds, datasets), the registry that finds plugins through entry points, and the checks of what
they return.  No TensorFlow."""
