"""Bounds on what ``graft validate`` reads from an image folder: only regular files are opened (a FIFO,
a device or a socket is named, never waited on), and every image's width and height come from its
header (PNG, JPEG, GIF, BMP) and are refused above ``max_pixels``."""

from __future__ import annotations

import os
import socket
import struct
import threading
import zlib

import numpy as np
import pytest

from graft.base.problems import SpecError
from graft.data.imagefiles import check_image_file, list_image_folder

pytest.importorskip("graft_digits")

from graft_digits.folder import png_bytes, write_png  # noqa: E402

AT = "stages[0].data.params"
SPEC = """\
seed: 1
model:
  input_shape: [8, 8, 3]
  extractor: {{plugin: mobilenet, params: {{variant: v2, alpha: 0.35, weights: none, pooling: avg}}}}
  heads:
    label: {{plugin: dense, loss: sparse_categorical_crossentropy, params: {{units: 2}}}}
stages:
  - name: only
    data: {{source: image_folder, params: {{directory: train, image_size: [8, 8]{more}}}}}
    epochs: 1
"""


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header says ``width`` x ``height`` (its pixel data is not read at validate)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(bytes(64))) \
        + _png_chunk(b"IEND", b"")


def gif(width: int, height: int) -> bytes:
    """A GIF89a of one frame, all of colour 0 (LZW minimum code size 2: clear, then end)."""
    screen = struct.pack("<HHBBB", width, height, 0x80, 0, 0) + bytes(6)  # a global table of 2 colours
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00"
    return b"GIF89a" + screen + frame + b";"


def bmp(width: int, height: int, core: bool = False) -> bytes:
    """A 24-bit BMP, bottom-up; ``core``: the old 12-byte BITMAPCOREHEADER (16-bit sizes)."""
    row = (width * 3 + 3) // 4 * 4
    pixels = bytes(row * height)
    if core:
        info = struct.pack("<IHHHH", 12, width, height, 1, 24)
    else:
        info = struct.pack("<IiiHHIIiiII", 40, width, -height, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    offset = 14 + len(info)
    return b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + info + pixels


def jpeg(width: int, height: int, sof: int = 0xC2) -> bytes:
    """A JPEG's markers: APP0, an EXIF APP1 of 3 KB, a fill byte, then the frame header (progressive by
    default), a scan and the end: the walk must skip segments to find the size."""
    app0 = b"\xff\xe0\x00\x10JFIF\x00" + bytes(9)
    exif = b"Exif\x00\x00" + bytes(3000)
    app1 = b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif
    frame = b"\xff\xff" + bytes([sof]) + struct.pack(">HBHHB", 17, 8, height, width, 3) + bytes(9)
    scan = b"\xff\xda\x00\x0c\x03" + bytes(7) + b"\x12\x34" * 20
    return b"\xff\xd8" + app0 + app1 + frame + scan + b"\xff\xd9"


@pytest.mark.parametrize(
    "kind, content",
    [
        ("png", png_bytes(np.zeros((30, 40), np.uint8))),
        ("gif", gif(40, 30)),
        ("bmp", bmp(40, 30)),
        ("bmp", bmp(40, 30, core=True)),
        ("jpeg", jpeg(40, 30)),
        ("jpeg", jpeg(40, 30, sof=0xC0)),
    ],
)
def test_width_and_height_come_from_the_header_of_every_format(tmp_path, kind, content):
    path = tmp_path / f"image.{kind}"
    path.write_bytes(content)
    assert check_image_file(str(path), max_pixels=1200) == (kind, "")  # 40 x 30 is exactly the bound
    found, problem = check_image_file(str(path), max_pixels=1199)
    assert found == kind
    assert problem == (
        f"{path} is 40x30 = 1,200 pixels, more than max_pixels (1,199) allows: decoding and resizing it would take "
        "about 18.8 KiB; shrink it, remove it or move it out of the image folder, or raise max_pixels in the "
        "image_folder params"
    )


def test_a_jpeg_without_a_frame_header_is_damaged(tmp_path):
    path = tmp_path / "x.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(9) + b"\xff\xda\x00\x02" + bytes(30) + b"\xff\xd9")
    assert check_image_file(str(path)) == (
        "jpeg",
        f"{path} is a damaged JPEG image (its header gives no width and height): replace it with a complete copy, "
        "or remove it or move it out of the image folder",
    )


def write_folder(root) -> None:
    for name in ("a", "b"):
        os.makedirs(root / "train" / name)
        write_png(str(root / "train" / name / "1.png"), np.full((8, 8), 7, np.uint8))


def test_a_huge_image_is_refused_at_validate_naming_the_file_and_max_pixels_changes_the_bound(tmp_path, load):
    write_folder(tmp_path)
    huge = tmp_path / "train" / "b" / "huge.png"
    huge.write_bytes(png_header_only(20000, 20000))  # a few hundred bytes on disk
    with pytest.raises(SpecError) as caught:
        load(SPEC.format(more=""))
    assert caught.value.lines == [
        f"{AT}.directory (line 9): {huge} is 20,000x20,000 = 400,000,000 pixels, more than max_pixels "
        "(50,000,000) allows: decoding and resizing it would take about 6.0 GiB; shrink it, remove it or move it "
        "out of the image folder, or raise max_pixels in the image_folder params"
    ]
    assert load(SPEC.format(more=", max_pixels: 400000000")).spec.stages[0].data.params.max_pixels == 400_000_000
    with pytest.raises(SpecError, match=r"params\.max_pixels \(line 9\): must be greater than 0"):
        load(SPEC.format(more=", max_pixels: 0"))


def listed_within(root: str, seconds: float = 30):
    """``list_image_folder(root)``, in a thread that must finish within ``seconds`` (a FIFO opened would
    block it for ever)."""
    result: list = []
    worker = threading.Thread(target=lambda: result.append(list_image_folder(root)), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"listing {root} blocked"
    return result[0]


def test_a_fifo_a_device_and_a_socket_are_named_and_never_opened(tmp_path, monkeypatch):
    write_folder(tmp_path)
    folder = tmp_path / "train" / "b"
    os.mkfifo(folder / "x.png")
    os.mkfifo(folder / "notes.txt")  # a name Keras does not read is looked into too
    os.symlink("/dev/null", folder / "null.jpg")
    monkeypatch.chdir(folder)  # a socket's path is limited to about 100 bytes
    server = socket.socket(socket.AF_UNIX)
    server.bind("s.gif")
    try:
        found = listed_within(str(tmp_path / "train"))
    finally:
        server.close()
    move = "remove it or move it out of the image folder"
    assert sorted(found.problems) == sorted([
        f"{folder / 'x.png'} is a named pipe (FIFO), not an image file: {move}",
        f"{folder / 'notes.txt'} is a named pipe (FIFO), not an image file; Keras would skip it: {move}",
        f"{folder / 'null.jpg'} is a device, not an image file: {move}",
        f"{folder / 's.gif'} is a socket, not an image file: {move}",
    ])


@pytest.mark.slow
def test_graft_validate_reports_a_fifo_without_blocking(tmp_path):
    import subprocess
    import sys

    write_folder(tmp_path)
    os.mkfifo(tmp_path / "train" / "a" / "cat.png")
    (tmp_path / "spec.yaml").write_text(SPEC.format(more=""))
    done = subprocess.run(
        [sys.executable, "-m", "graft", "validate", str(tmp_path / "spec.yaml")],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 1
    assert f"{AT}.directory (line 9): {tmp_path / 'train' / 'a' / 'cat.png'} is a named pipe (FIFO)" in done.stderr
