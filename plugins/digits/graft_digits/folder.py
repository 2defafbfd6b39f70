"""Write scikit-learn's digits as a folder of PNG files, one sub-folder per digit.

::

    python -m graft_digits.folder OUT [--size 32] [--holdout 0.3] [--seed 0] [--classes 0 1 2 ...]

writes ``OUT/train/<digit>/NNNN.png`` and ``OUT/val/<digit>/NNNN.png`` (``NNNN``
is the image's index in scikit-learn's digits), the layout
``keras.utils.image_dataset_from_directory`` and keras-graft's ``image_folder``
source read.  The held-out (``val``) images are exactly those the
``sklearn_digits`` source holds out with the same ``holdout`` and ``seed``
(``split_indices``); with ``--holdout 0`` there is no ``val`` folder.  Images
are 8-bit grey PNGs, upsampled to ``size`` x ``size`` by nearest neighbour,
pixel values ``round(v * 255 / 16)`` (the ``sklearn_digits`` source gives the
same values unrounded).

Standard library and numpy only (PNG written with ``zlib`` and ``struct``), no
TensorFlow, no Pillow.  It refuses to write into a folder that is not empty.
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import zlib
from collections.abc import Sequence

import attrs
import numpy as np

from graft_digits import DIGITS, SIDE, DigitsParams, digit_images, split_indices

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_bytes(pixels: np.ndarray) -> bytes:
    """An 8-bit greyscale PNG of ``pixels`` (a 2-D uint8 array, rows first)."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    if pixels.ndim != 2 or 0 in pixels.shape:
        raise ValueError(f"expected a non-empty 2-D array of grey pixels, got shape {pixels.shape}")
    height, width = pixels.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    # 8 bits per pixel, greyscale, deflate, adaptive filtering (type 0 used), no interlace
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = np.hstack([np.zeros((height, 1), dtype=np.uint8), pixels]).tobytes()  # filter type 0 before each row
    return PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 6)) + chunk(b"IEND", b"")


def write_png(path: str, pixels: np.ndarray) -> None:
    """Write ``pixels`` (2-D uint8) to ``path`` as a greyscale PNG."""
    with open(path, "wb") as handle:
        handle.write(png_bytes(pixels))


def grey_images(images: np.ndarray, size: int) -> np.ndarray:
    """8x8 digits (values 0..16) -> uint8 ``(n, size, size)``, nearest-neighbour upsampled, ``round(v * 255 / 16)``."""
    factor = size // SIDE
    grey = np.rint(np.asarray(images, dtype=np.float64) * (255 / 16)).astype(np.uint8)
    return grey.repeat(factor, axis=1).repeat(factor, axis=2)


@attrs.frozen
class Written:
    """What ``write_digits_folder`` wrote: image counts per digit, per split."""

    root: str
    train: dict[int, int]
    val: dict[int, int]

    @property
    def total(self) -> int:
        return sum(self.train.values()) + sum(self.val.values())


def write_digits_folder(
    out: str, size: int = 32, holdout: float = 0.3, seed: int = 0, classes: Sequence[int] = tuple(DIGITS)
) -> Written:
    """Write the digits of ``classes`` under ``out/train`` (and ``out/val`` if ``holdout`` > 0).

    Raises ``FileExistsError`` if ``out`` exists and is not an empty folder,
    ``ValueError`` for a size that is not a multiple of 8 or a bad holdout.
    """
    if size < SIDE or size % SIDE:
        raise ValueError(f"--size must be a multiple of 8 (8, 16, 24, 32, ...), got {size}")
    if not 0 <= holdout < 1:
        raise ValueError(f"--holdout must be at least 0 and below 1, got {holdout}")
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise FileExistsError(
            f"{out} already exists and is not an empty folder; it is left as it is: remove it or give another folder"
        )
    images, digits = digit_images()
    params = DigitsParams(classes=list(classes), holdout=holdout, seed=seed)
    train, held = split_indices(digits, params)
    splits = {"train": train, "val": held} if holdout > 0 else {"train": train}
    counts: dict[str, dict[int, int]] = {"train": {}, "val": {}}
    for split, per_digit in splits.items():
        for digit, indices in zip(params.classes, per_digit, strict=True):
            folder = os.path.join(out, split, str(digit))
            os.makedirs(folder, exist_ok=True)
            indices = np.sort(indices)
            for index, pixels in zip(indices, grey_images(images[indices], size), strict=True):
                write_png(os.path.join(folder, f"{index:04d}.png"), pixels)
            counts[split][digit] = len(indices)
    return Written(out, counts["train"], counts["val"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m graft_digits.folder",
        description="Write scikit-learn's digits as PNG files, OUT/train/<digit>/ and OUT/val/<digit>/.",
    )
    parser.add_argument("out", metavar="OUT", help="folder to write (must not exist, or be empty)")
    parser.add_argument("--size", type=int, default=32, help="image side in pixels, a multiple of 8 (default 32)")
    parser.add_argument("--holdout", type=float, default=0.3, help="fraction of each digit held out in val/ (0.3)")
    parser.add_argument("--seed", type=int, default=0, help="which images are held out (default 0)")
    parser.add_argument(
        "--classes", type=int, nargs="+", default=list(DIGITS), metavar="DIGIT", help="digits to write (default all)"
    )
    args = parser.parse_args(argv)
    if any(digit not in DIGITS for digit in args.classes) or len(set(args.classes)) != len(args.classes):
        given = " ".join(map(str, args.classes))
        print(f"error: --classes must be digits 0..9, each at most once; got {given}", file=sys.stderr)
        return 1
    if args.seed < 0:
        print(f"error: --seed must be 0 or more, got {args.seed}", file=sys.stderr)
        return 1
    try:
        written = write_digits_folder(args.out, args.size, args.holdout, args.seed, args.classes)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    val = f", {sum(written.val.values())} in {os.path.join(args.out, 'val')}" if written.val else ""
    print(
        f"wrote {written.total} PNG images ({args.size}x{args.size} grey) of digits "
        f"{' '.join(map(str, args.classes))}: {sum(written.train.values())} in {os.path.join(args.out, 'train')}{val}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
