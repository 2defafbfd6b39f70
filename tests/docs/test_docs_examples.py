"""The examples in the docs and the README work: an example that stops working fails here.

- Every ```yaml block parses as YAML.
- Every whole spec (a ```yaml block with a top-level ``model:`` key) carries a title naming its
  file (```yaml title="photos.yaml"), and loads through ``graft.load_spec`` as ``graft validate``
  checks it, without TensorFlow. The files its relative paths name (an ``.npz``, a folder of
  class folders, a Keras model file) are made first, tiny, beside it in a temporary folder.
- A titled block whose title is a file of this repository (``configs/gru_transfer.yaml``) holds
  the same YAML data as that file.
- Every ``graft ...`` command line in a ```sh, ```bash or ```console block parses with
  ``graft``'s own argument parser, so a renamed or removed flag fails here.

Blocks may pull a repository file in with ``--8<-- "path"`` (pymdownx.snippets), as the site does.
"""

from __future__ import annotations

import re
import shlex
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml

import graft

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]
FENCE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>`{3,})(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)(?P=fence)[ \t]*$", re.M | re.S
)
SNIPPET = re.compile(r'^[ \t]*--8<--[ \t]+"(?P<path>[^"]+)"[ \t]*$', re.M)
TITLE = re.compile(r'title="(?P<title>[^"]+)"')


def _blocks(language: set[str]):
    """(page, line, info, body) of every fenced block whose language is in ``language``."""
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            info = match.group("info").strip()
            if info.split(" ", 1)[0].lstrip("{.") not in language:
                continue
            indent = len(match.group("indent"))
            body = "".join(line[indent:] for line in match.group("body").splitlines(keepends=True))
            body = SNIPPET.sub(lambda m: (ROOT / m.group("path")).read_text(encoding="utf-8"), body)
            line = text.count("\n", 0, match.start()) + 1
            yield page, line, info, body


def _where(page: Path, line: int) -> str:
    return f"{page.relative_to(ROOT)}:{line}"


YAML_BLOCKS = list(_blocks({"yaml", "yml"}))
SPECS = [
    block for block in YAML_BLOCKS
    if isinstance(data := yaml.safe_load(block[3]), dict) and "model" in data
]


def test_the_docs_have_whole_specs():
    assert len(SPECS) >= 6, [_where(page, line) for page, line, _, _ in SPECS]


@pytest.mark.parametrize("block", YAML_BLOCKS, ids=[_where(page, line) for page, line, _, _ in YAML_BLOCKS])
def test_every_yaml_block_parses(block):
    yaml.safe_load(block[3])


@pytest.mark.parametrize("block", SPECS, ids=[_where(page, line) for page, line, _, _ in SPECS])
def test_every_whole_spec_validates(block, tmp_path):
    page, line, info, body = block
    title = TITLE.search(info)
    assert title, f"{_where(page, line)}: a whole spec needs a title naming its file: ```yaml title=\"name.yaml\""
    data = yaml.safe_load(body)
    in_repo = ROOT / title.group("title")
    if in_repo.is_file():
        assert data == yaml.safe_load(in_repo.read_text(encoding="utf-8")), (
            f"{_where(page, line)} shows {title.group('title')}, but not as it is in the repository"
        )
    spec = tmp_path / Path(title.group("title")).name
    spec.write_text(body, encoding="utf-8")
    _make_files_it_reads(data, tmp_path)
    graft.load_spec(spec)  # raises graft.SpecError with every problem at its YAML path and line


# -- the files a doc spec reads, made tiny ------------------------------------------------------


def _make_files_it_reads(data: dict, folder: Path) -> None:
    input_shape = tuple(data["model"]["input_shape"])
    for stage in data["stages"]:
        source = (stage.get("data") or {}).get("source")
        params = (stage.get("data") or {}).get("params") or {}
        if source == "npz":
            for key in ("path", "validation_path"):
                if params.get(key):
                    arrays = [*params["targets"].values(), *(params.get("sample_weights") or {}).values()]
                    _npz(folder / params[key], params.get("inputs", "x"), arrays, input_shape)
        if source == "image_folder":
            for key in ("directory", "validation_directory"):
                if params.get(key):
                    for name in params.get("class_names") or ["cats", "dogs"]:
                        _png(folder / params[key] / str(name) / "001.png")
        for key in ("model", "weights"):
            path = (stage.get("init") or {}).get(key)
            if path:
                _touch(folder / path)
    weights = (data["model"]["extractor"].get("params") or {}).get("weights")
    if weights not in (None, "none", "imagenet"):
        _touch(folder / weights)


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def _npz(path: Path, inputs: str, targets, input_shape: tuple[int, ...]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {inputs: np.zeros((4, *input_shape), dtype=np.float32)}
    arrays.update({name: np.zeros(4, dtype=np.int64) for name in targets})
    np.savez(path, **arrays)


def _png(path: Path) -> None:
    """A 1x1 grey PNG."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\x80"))
                     + chunk(b"IEND", b""))


# -- the README's links into the docs ----------------------------------------------------------


def test_readme_links_lead_somewhere():
    """The README is read on its own (GitHub, PyPI): every relative link names a file of the repository,
    and an anchor one of that page's headings."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\((?!https?:|#)([^)\s]+)\)", text)
    assert len(links) >= 20
    broken = []
    for link in links:
        path, _, anchor = link.partition("#")
        target = ROOT / path
        if not target.exists() or (anchor and anchor not in _anchors(target.read_text(encoding="utf-8"))):
            broken.append(link)
    assert not broken, f"README.md links to nothing: {broken}"


def _anchors(markdown: str) -> set[str]:
    """The ids of a page's headings, as MkDocs and GitHub make them (lowercase, punctuation dropped, - for spaces)."""
    found = set()
    for heading in re.findall(r"^#{1,6} +(.+?)\s*$", markdown, re.M):
        explicit = re.search(r"\{#([\w-]+)\}$", heading)
        if explicit:
            found.add(explicit.group(1))
            continue
        words = re.sub(r"[^\w\s-]", "", heading.replace("`", "")).strip().lower()
        found.add(re.sub(r"\s+", "-", words))
    return found


# -- command lines ------------------------------------------------------------------------------


def _command_lines():
    for page, line, info, body in _blocks({"sh", "bash", "console", "shell"}):
        console = info.startswith("console")
        for offset, text in enumerate(body.replace("\\\n", " ").splitlines()):
            if console:
                if not text.startswith("$ "):
                    continue
                text = text[2:]
            for command in _commands(text):
                if command and command[0] == "graft":
                    yield _where(page, line + 1 + offset), command[1:]


def _commands(text: str) -> list[list[str]]:
    """The commands of one shell line: split at && ; |, leading VAR=value assignments dropped."""
    commands: list[list[str]] = [[]]
    for token in shlex.split(text, comments=True):
        if token in ("&&", "||", ";", "|"):
            commands.append([])
        elif not (commands[-1] == [] and re.fullmatch(r"[A-Za-z_]\w*=.*", token)):
            commands[-1].append(token)
    return commands


COMMANDS = list(_command_lines())


def test_the_docs_show_graft_commands():
    assert len(COMMANDS) >= 20


@pytest.mark.parametrize("where, argv", COMMANDS, ids=[where for where, _ in COMMANDS])
def test_every_graft_command_line_parses(where, argv, capsys):
    from graft.commands.cli import _parser

    try:
        _parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"{where}: graft {' '.join(argv)}: {capsys.readouterr().err.strip()} (exit {exc.code})")


# -- search spaces (graft sweep) ------------------------------------------------------------

SPACES = [block for block in YAML_BLOCKS
          if isinstance(data := yaml.safe_load(block[3]), dict) and "params" in data and "model" not in data]


def test_the_docs_have_a_search_space():
    assert SPACES


@pytest.mark.parametrize("block", SPACES, ids=[_where(page, line) for page, line, _, _ in SPACES])
def test_every_search_space_is_vetted_against_the_seed_spec(block, tmp_path):
    """A search space shown in the docs sweeps configs/gru_transfer.yaml, as the page's commands say: every path and
    both ends of every range are accepted by that spec (graft.tuning.vetting), without TensorFlow."""
    from graft.plugins.registry import Registry
    from graft.tuning.space import read_space
    from graft.tuning.vetting import vet_sweep

    page, line, _, body = block
    path = tmp_path / "sweep.yaml"
    path.write_text(body, encoding="utf-8")
    registry = Registry.discover()
    sweep = vet_sweep(str(ROOT / "configs" / "gru_transfer.yaml"), registry, read_space(str(path)), None)
    assert sweep.stage == "transfer", _where(page, line)
