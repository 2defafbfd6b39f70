"""Run the tutorials as a reader would, and check that they print what the pages say.

    python docs/scripts/run_tutorials.py                     # every tutorial below, in a temporary folder each
    python docs/scripts/run_tutorials.py your-npz --exact    # one tutorial; numbers must match to the last digit

Each page is followed top to bottom: a code block with a title (```python title="make_series.py",
```yaml title="series.yaml") is written to that file; every command of a ```sh block is run there
(installs are left out: run this where keras-graft, TensorFlow and the repository's plugins are
installed); the ```text block right after a ```sh block is what its last command should print. A
command whose shown output starts with ``error:`` must fail; any other must succeed. Every line of
the shown output must appear in what the command printed, except progress and timing lines and
``...``; numbers are compared only with ``--exact`` (they depend on the TensorFlow version and the
CPU: the pages were measured with TensorFlow 2.21 on CPU).

It trains real models: the seed scenario, the .npz and the Keras-model tutorials take a few minutes
on 2 cores; ``your-photos`` (digits as PNG folders, then MobileNet) several more. Nothing is written
outside the temporary folders (the feature cache included).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TUTORIALS = ROOT / "docs" / "tutorials"
# page -> repository files the page's commands read by their repository path
PAGES = {
    "seed-scenario": ["configs/gru_transfer.yaml"],
    "your-npz": [],
    "your-keras-model": [],
    "write-a-plugin": [],
    "your-photos": ["configs/mobilenet_folder.yaml"],
}
SKIPPED_COMMANDS = ("pip ", "python -m pip ", "python -m venv", "python -m build", "python -m twine", "tensorboard ",
                    "pytest ")
USER_FILES = ("photos.yaml", "runs/photos")  # commands on data only the reader has
NOT_COMPARED = ("...", "done in", "ms/step", "Epoch ", "features: /", "s of training")
FENCE = re.compile(r"^(?P<fence>`{3,})(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=fence)[ \t]*$", re.M | re.S)
SNIPPET = re.compile(r'^--8<--[ \t]+"(?P<path>[^"]+)"[ \t]*$', re.M)


def blocks(page: Path):
    """(language, title, body, adjacent) of every fenced block of the page, in order; ``adjacent``: nothing
    but blank lines stands between it and the block before."""
    text = page.read_text(encoding="utf-8")
    end = None
    for match in FENCE.finditer(text):
        info = match.group("info").strip()
        title = re.search(r'title="([^"]+)"', info)
        body = SNIPPET.sub(lambda m: (ROOT / m.group("path")).read_text(encoding="utf-8"), match.group("body"))
        adjacent = end is not None and not text[end:match.start()].strip()
        end = match.end()
        yield info.split(" ", 1)[0], title.group(1) if title else None, body, adjacent


def _after(items):
    """(the language of the block before, the block) for every block."""
    before = ""
    for item in items:
        yield before, item
        before = item[0]


def normal(line: str, exact: bool) -> str:
    """The line with its spacing collapsed (column widths follow path lengths), numbers masked unless exact."""
    line = " ".join(line.split())
    return line if exact else re.sub(r"\d[\d,.]*(e-?\d+)?", "#", line)


def run_page(name: str, folder: Path, exact: bool) -> list[str]:
    failures: list[str] = []
    for path in PAGES[name]:
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, folder / path)
    pending: tuple[str, subprocess.CompletedProcess] | None = None
    for language_before, (language, title, body, adjacent) in _after(blocks(TUTORIALS / f"{name}.md")):
        follows_commands = language_before in ("sh", "bash")
        if pending is not None and not (language == "text" and adjacent and follows_commands):
            failures += _failed(name, *pending)  # a command no output block follows must succeed
            pending = None
        if title and language in ("python", "yaml", "toml"):
            (folder / title).parent.mkdir(parents=True, exist_ok=True)
            (folder / title).write_text(body, encoding="utf-8")
        elif language in ("sh", "bash"):
            for line in body.replace("\\\n", " ").splitlines():
                command = line.split("  #", 1)[0].strip()
                if not command or command.startswith(SKIPPED_COMMANDS) or any(file in command for file in USER_FILES):
                    continue
                if pending is not None:
                    failures += _failed(name, *pending)
                print(f"  $ {command}", flush=True)
                done = subprocess.run(command, shell=True, cwd=folder, capture_output=True, text=True)
                pending = (command, done)
                if done.returncode != 0:
                    print(f"    exit {done.returncode}", flush=True)
        elif language == "text" and pending is not None and adjacent and follows_commands:
            command, done = pending
            pending = None
            expected = body.splitlines()
            should_fail = bool(expected) and expected[0].startswith("error:")
            if (done.returncode != 0) != should_fail:
                failures.append(f"{name}: `{command}` exited {done.returncode}:\n{done.stderr[-2000:]}")
                continue
            printed = (done.stdout + done.stderr).replace(f"{folder}/", "/tmp/tut-dir/")
            shown = [re.sub(r"/tmp/tut-[a-z]+/", "/tmp/tut-dir/", line) for line in expected]
            lines = {normal(line, exact) for line in printed.splitlines()}
            for line in shown:
                compared = line.strip() and not any(part in line for part in NOT_COMPARED)
                if compared and normal(line, exact) not in lines:
                    failures.append(f"{name}: `{command}` did not print: {line}")
    if pending is not None:
        failures += _failed(name, *pending)
    return failures


def _failed(name: str, command: str, done: subprocess.CompletedProcess) -> list[str]:
    return [f"{name}: `{command}` exited {done.returncode}:\n{done.stderr[-2000:]}"] if done.returncode else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="*", metavar="PAGE", help=f"tutorials to run: {', '.join(PAGES)} (default: all)")
    parser.add_argument("--exact", action="store_true", help="numbers must match the pages to the last digit")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR/<page> and keep it, instead of a temporary folder")
    args = parser.parse_args(argv)
    unknown = [page for page in args.pages if page not in PAGES]
    if unknown:
        parser.error(f"no tutorial {', '.join(unknown)}; tutorials: {', '.join(PAGES)}")
    failures: list[str] = []
    for name in args.pages or list(PAGES):
        print(f"{name}:", flush=True)
        with tempfile.TemporaryDirectory(prefix=f"graft-{name}-") as temporary:
            folder = Path(args.keep) / name if args.keep else Path(temporary)
            folder.mkdir(parents=True, exist_ok=True)
            os.environ["GRAFT_CACHE_DIR"] = str(folder / ".graft-cache")
            failures += run_page(name, folder, args.exact)
    for failure in failures:
        print(f"FAILED {failure}", file=sys.stderr)
    print(f"{len(failures)} problem(s)" if failures else "every tutorial printed what its page shows")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
