"""The layers of each MobileNet variant, for ``graft validate`` (``graft_applications.layerlists`` reads and
writes the lists; no TensorFlow here)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any


def key(variant: str, pooling: str) -> str:
    return f"{variant}/{pooling}"


def mobilenet_models() -> Iterable[tuple[str, Callable[[], list[list[Any]]]]]:
    """(key, how to build its rows) for every variant and pooling (alpha and weights do not change the names)."""
    from graft_applications.layerlists import build_rows
    from graft_mobilenet import POOLINGS, VARIANTS

    for variant in VARIANTS:
        for pooling in POOLINGS:
            params = {"variant": variant, "pooling": pooling}
            yield key(variant, pooling), partial(build_rows, "mobilenet", params, (32, 32, 3))
