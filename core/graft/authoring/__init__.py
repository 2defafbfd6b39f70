"""Tools for plugin authors: the conformance kit (``graft.testing``) and the scaffold of ``graft new-plugin``."""
