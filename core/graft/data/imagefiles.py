"""A folder of images with one sub-folder per class, listed as ``keras.utils.image_dataset_from_directory`` lists it.

Pure Python (no TensorFlow): ``graft validate`` lists every file and checks it
without decoding it, from its first and last bytes.

What Keras reads: the sub-folders of the top folder whose names do not start
with ``.`` are the classes, sorted by name (class ids ``0..n-1`` in that order,
unless ``class_names`` chooses and orders them); every file under a class
folder (sub-folders included) whose name ends in ``.bmp .gif .jpeg .jpg .png``
(any case) is one image of that class, in sorted order.

What Keras would skip silently or fail on mid-training, and this module reports
as a problem naming the file or folder and what to do: a file in a class folder
that is not an image (``notes.txt``); a file directly in the top folder; an
empty class folder; no class folders; an image file that is empty, is not an
image (its first bytes say what it is) or is cut short (a PNG without its
``IEND`` chunk, a JPEG without its end marker, a GIF without its trailer, a BMP
smaller than its header says); an image whose header gives it more pixels than
``max_pixels`` (decoding and resizing one takes about 16 bytes a pixel); and
anything that is not a regular file (a FIFO, a device, a socket: never opened, so
listing never blocks).  Hidden files that are not images (``.DS_Store``) and
``Thumbs.db``/``desktop.ini`` are ignored.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence

import attrs

from graft.base.files import NotRegularFile, open_regular
from graft.base.memory import human_bytes
from graft.base.paths import shown

EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")  # keras's image_dataset_from_directory ALLOWLIST_FORMATS
IGNORED = frozenset({"thumbs.db", "desktop.ini"})
HEAD, TAIL = 32, 1024  # bytes read from the start and the end of every file
MOVE = "remove it or move it out of the image folder"
MAX_PIXELS = 50_000_000  # the default bound on an image's width x height (a 45-megapixel camera's photos pass)
JPEG_SEGMENTS = 1024  # segments scanned for a JPEG's frame header before it is called damaged
SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})

SIGNATURES = (  # (first bytes, what the file is): images TensorFlow decodes first
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
)
OTHERS = (  # files that are not images, to say what they are
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a zip archive"),
    (b"\x1f\x8b", "a gzip file"),
    (b"\x93NUMPY", "a numpy .npy array"),
    (b"\x00\x05\x16\x07", "a macOS resource fork (an AppleDouble ._ file)"),
)


@attrs.frozen
class ImageFolderListing:
    """The images of a class folder tree, in the order Keras reads them.

    ``files`` are full paths, ``labels`` their class ids (indices into
    ``classes``), ``formats`` what each file's first bytes say it is (``png``,
    ``jpeg``, ``gif``, ``bmp``; ``""`` when the contents were not checked).
    ``problems`` are messages, each naming a file or folder and what to do;
    the listing is usable only when there are none.
    """

    root: str
    classes: tuple[str, ...]
    files: tuple[str, ...]
    labels: tuple[int, ...]
    formats: tuple[str, ...] = ()
    folders: tuple[str, ...] = ()  # every class folder found, sorted, before ``class_names`` chose among them
    problems: tuple[str, ...] = ()

    def count(self, label: int) -> int:
        """How many images class ``label`` has."""
        return self.labels.count(label)


def is_image_name(name: str) -> bool:
    """Whether Keras reads a file of this name (by its extension, any case)."""
    return name.lower().endswith(EXTENSIONS)


def class_folders(root: str) -> list[str]:
    """The class folder names under ``root`` as Keras finds them: sub-folders not starting with ``.``, sorted."""
    with os.scandir(root) as entries:
        return sorted(entry.name for entry in entries if entry.is_dir() and not entry.name.startswith("."))


def list_image_folder(
    root: str, class_names: Sequence[str] | None = None, check_content: bool = True, max_pixels: int = MAX_PIXELS
) -> ImageFolderListing:
    """List ``root`` as ``image_dataset_from_directory(root, class_names=...)`` would, with every problem found.

    ``class_names`` chooses and orders the classes (each must be a class
    folder); without it every class folder is a class, sorted by name.  With
    ``check_content`` every image file's first and last bytes are checked, and
    its width and height (from its header) against ``max_pixels``.
    """
    problems: list[str] = []
    try:
        folders = class_folders(root)
        top_files = sorted(entry.name for entry in os.scandir(root) if not entry.is_dir())
    except OSError as exc:
        return ImageFolderListing(root, (), (), (), problems=(f"cannot list {shown(root)}: {exc.strerror or exc}",))
    strays = [name for name in top_files if not _ignored(name)]
    if not folders:
        hint = f" (it holds {len(strays)} files but no folders)" if strays else ""
        problems.append(
            f"{shown(root)} has no class folders{hint}: put the images of each class in a sub-folder named after the "
            f"class, e.g. {os.path.join(root, 'cats', '001.jpg')}"
        )
        return ImageFolderListing(root, (), (), (), problems=tuple(problems))
    for name in strays:
        problems.append(
            f"{os.path.join(root, name)} is directly in the image folder, where Keras ignores it: "
            f"move it into the folder of its class, or out of {shown(root)}"
        )
    classes = tuple(folders if class_names is None else dict.fromkeys(class_names))  # a name given twice: once
    files: list[str] = []
    labels: list[int] = []
    formats: list[str] = []
    for label, name in enumerate(classes):
        folder = os.path.join(root, name)
        if name not in folders:
            continue  # the caller reports a chosen class that has no folder, at its own field
        found = 0
        for path, problem, kind in _class_files(folder, check_content, max_pixels):
            if problem:
                problems.append(problem)
            if kind is not None:
                files.append(path)
                labels.append(label)
                formats.append(kind)
                found += 1
        if found == 0:
            problems.append(
                f"class folder {shown(folder)} has no images ({' '.join(EXTENSIONS)}): add images of class '{name}' "
                f"or remove the folder"
            )
    return ImageFolderListing(
        root, classes, tuple(files), tuple(labels), tuple(formats), tuple(folders), tuple(problems)
    )


def _ignored(name: str) -> bool:
    return (name.startswith(".") and not is_image_name(name)) or name.lower() in IGNORED


def _class_files(folder: str, check_content: bool, max_pixels: int):
    """``(path, problem or "", format or None)`` for every file under ``folder``, in Keras's order.

    ``format`` is None for a file Keras does not read; ``""`` for an image
    file whose contents were not checked.
    """
    for top, _, names in sorted(os.walk(folder), key=lambda walked: walked[0]):
        for name in sorted(names):
            path = os.path.join(top, name)
            if not is_image_name(name):
                if not _ignored(name):
                    yield path, _other_file_problem(path), None
                continue
            if not check_content:
                yield path, "", ""
                continue
            kind, problem = check_image_file(path, max_pixels)
            yield path, problem, kind


def check_image_file(path: str, max_pixels: int = MAX_PIXELS) -> tuple[str, str]:
    """``(format, problem)`` of one image file from its first and last bytes and its header's width and height
    (at most ``max_pixels`` pixels); ``problem`` is ``""`` if none.  Only a regular file is opened."""
    try:
        with open_regular(path) as handle:
            head = handle.read(HEAD)
            size = os.fstat(handle.fileno()).st_size
            handle.seek(max(len(head), size - TAIL))
            tail = (head + handle.read(TAIL))[-TAIL:]  # the last TAIL bytes (the whole file if small)
            kind = _image_kind(head)
            dimensions = _dimensions(kind, head, handle) if kind and size else None
    except NotRegularFile as exc:
        return "", f"{path} is {exc.kind}, not an image file: {MOVE}"
    except OSError as exc:
        return "", f"cannot read {path}: {exc.strerror or exc}; make it readable or {MOVE}"
    if size == 0:
        return "", f"{path} is empty (0 bytes), not an image: {MOVE}"
    if not kind:
        what, advice = _describe(head)
        return "", f"{path} is {what}, not a PNG, JPEG, GIF or BMP image: {advice}"
    if _truncated(kind, head, tail, size):
        return kind, (
            f"{path} is a truncated {kind.upper()} image (it ends before its {END[kind]}): "
            f"replace it with a complete copy, or {MOVE}"
        )
    if dimensions is None:
        return kind, (
            f"{path} is a damaged {kind.upper()} image (its header gives no width and height): "
            f"replace it with a complete copy, or {MOVE}"
        )
    width, height = dimensions
    if width * height > max_pixels:
        return kind, (
            f"{path} is {width:,}x{height:,} = {width * height:,} pixels, more than max_pixels ({max_pixels:,}) "
            f"allows: decoding and resizing it would take about {human_bytes(width * height * 16)}; shrink it, "
            f"{MOVE}, or raise max_pixels in the image_folder params"
        )
    return kind, ""


def _dimensions(kind: str, head: bytes, handle) -> tuple[int, int] | None:
    """``(width, height)`` from the image's header; None if the header does not say (a damaged image)."""
    if kind == "png":
        if len(head) < 24 or head[12:16] != b"IHDR":
            return None
        width, height = struct.unpack_from(">II", head, 16)
        return width, height
    if kind == "gif":
        if len(head) < 10:
            return None
        width, height = struct.unpack_from("<HH", head, 6)
        return width, height
    if kind == "bmp":
        if len(head) < 26:
            return None
        header = struct.unpack_from("<I", head, 14)[0]
        if header == 12:  # BITMAPCOREHEADER: 16-bit sizes
            width, height = struct.unpack_from("<HH", head, 18)
            return width, height
        width, height = struct.unpack_from("<ii", head, 18)
        return abs(width), abs(height)  # a negative height: rows stored top-down
    return _jpeg_dimensions(handle)


def _jpeg_dimensions(handle) -> tuple[int, int] | None:
    """A JPEG's ``(width, height)`` from its frame header (SOF), found by walking the segments before the scan."""
    handle.seek(2)
    for _ in range(JPEG_SEGMENTS):
        if handle.read(1) != b"\xff":
            return None
        marker = handle.read(1)
        for _fill in range(64):  # 0xFF fill bytes may precede a marker
            if marker != b"\xff":
                break
            marker = handle.read(1)
        if not marker or marker in (b"\xd9", b"\xda"):  # the end, or the scan: no frame header before it
            return None
        if marker == b"\x01" or b"\xd0" <= marker <= b"\xd7":  # markers without a length
            continue
        length = handle.read(2)
        if len(length) < 2 or int.from_bytes(length, "big") < 2:
            return None
        if marker[0] in SOF_MARKERS:
            frame = handle.read(5)
            if len(frame) < 5:
                return None
            height, width = struct.unpack_from(">HH", frame, 1)
            return width, height
        handle.seek(int.from_bytes(length, "big") - 2, os.SEEK_CUR)
    return None


END = {"png": "IEND chunk", "jpeg": "end marker FFD9", "gif": "trailer byte 3B", "bmp": "pixel data"}


def _image_kind(head: bytes) -> str:
    return next((kind for magic, kind in SIGNATURES if head.startswith(magic)), "")


def _truncated(kind: str, head: bytes, tail: bytes, size: int) -> bool:
    """Whether the file ends before its format says it does (the last ``TAIL`` bytes are ``tail``)."""
    if kind == "png":
        return b"IEND\xaeB`\x82" not in tail
    if kind == "jpeg":  # FFD9 never occurs inside entropy-coded data: 0xFF there is followed by 00 or D0-D7
        return b"\xff\xd9" not in tail
    if kind == "gif":
        return not tail.rstrip(b"\x00").endswith(b";")
    if len(head) >= 30 and struct.unpack_from("<I", head, 14)[0] >= 40:  # a BMP with a BITMAPINFOHEADER or later
        offset = struct.unpack_from("<I", head, 10)[0]
        width, height, _, bits = struct.unpack_from("<iiHH", head, 18)
        return offset + (abs(width) * bits + 31) // 32 * 4 * abs(height) > size
    return False


def _describe(head: bytes) -> tuple[str, str]:
    """(what a file that is not a readable image is, what to do), from its first bytes."""
    convert = f"convert it to PNG or JPEG, or {MOVE}"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image", convert
    if head[4:8] == b"ftyp":
        return "an HEIC/AVIF image or a video", convert
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "a TIFF image", convert
    for magic, kind in OTHERS:
        if head.startswith(magic):
            return kind, MOVE
    text = head.decode("utf-8", errors="replace").lstrip().lower()
    if text.startswith("<") and ("svg" in text or "<?xml" in text):
        return "an SVG or XML text file", convert
    if all(32 <= byte < 127 or byte in b"\t\r\n" for byte in head):
        return f"a text file beginning {head[:20].decode('ascii')!r}", MOVE
    return f"a file beginning with the bytes {head[:8].hex(' ')}", MOVE


def _other_file_problem(path: str) -> str:
    """The problem of a file in a class folder whose extension Keras does not read."""
    try:
        with open_regular(path) as handle:
            head = handle.read(HEAD)
    except NotRegularFile as exc:
        return f"{path} is {exc.kind}, not an image file; Keras would skip it: {MOVE}"
    except OSError as exc:
        return f"{path} is not an image file (and cannot be read: {exc.strerror or exc}); Keras would skip it: {MOVE}"
    if _image_kind(head):
        name = _image_kind(head)
        return (
            f"{path} is a {name.upper()} image with an extension Keras does not read, so it would be skipped: "
            f"rename it to .{'jpg' if name == 'jpeg' else name}, or {MOVE}"
        )
    what, advice = _describe(head) if head else ("an empty file", MOVE)
    return f"{path} is {what}, not an image file, so Keras would skip it: {advice}"
