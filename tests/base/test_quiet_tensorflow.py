"""TensorFlow's import banners are hidden from graft's stderr (issue #10); anything else is shown.

TensorFlow imports once per process, so every check of ``import_keras`` runs in a
fresh interpreter.  ``fd2_lines_hidden`` is checked without TensorFlow: what a block
writes to file descriptor 2, in a subprocess and in this one under pytest's capture.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import re
import signal
import subprocess
import sys
import textwrap

import pytest

import graft
from graft.base.backend import TENSORFLOW_BANNERS, fd2_lines_hidden, verbose

BANNERS = [re.compile(pattern) for pattern in TENSORFLOW_BANNERS]
POSIX = pytest.mark.skipif(os.name != "posix", reason="fd2_lines_hidden hides nothing off POSIX")


def banner_kinds(text: str) -> list[str]:
    """The banner pattern each line of ``text`` matches, in order (none for other lines)."""
    return [banner.pattern for line in text.splitlines() for banner in BANNERS if banner.search(line)]


def environment(**changes: str | None) -> dict[str, str]:
    """os.environ without GRAFT_VERBOSE and TF_CPP_MIN_LOG_LEVEL, with this graft first on the path,
    then ``changes``."""
    env = {key: value for key, value in os.environ.items() if key not in ("GRAFT_VERBOSE", "TF_CPP_MIN_LOG_LEVEL")}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(pathlib.Path(graft.__file__).resolve().parents[1]), *filter(None, [env.get("PYTHONPATH")])]
    )
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def python(code: str, env: dict[str, str] | None = None, stderr=subprocess.PIPE) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter; its stdout, and its stderr unless that goes to ``stderr``."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env=env or environment(),
        timeout=120,
    )


# -- import_keras with the real TensorFlow ---------------------------------------

IMPORT_KERAS = ("from graft.base.backend import import_keras; import_keras(); "
                "import os; os.write(1, b'stdout untouched\\n')")
IMPORT_RUNS = {
    # what this machine's TensorFlow prints when imported, with every log level on
    "reference": (["-c", "import tensorflow"], environment(TF_CPP_MIN_LOG_LEVEL="0")),
    # graft as a user runs it: TF_CPP_MIN_LOG_LEVEL is graft's default (2)
    "default": (["-c", IMPORT_KERAS], environment()),
    # the user asked TensorFlow for every log line: the banners still go (GRAFT_VERBOSE shows them)
    "default, TF_CPP_MIN_LOG_LEVEL=0": (["-c", IMPORT_KERAS], environment(TF_CPP_MIN_LOG_LEVEL="0")),
    "GRAFT_VERBOSE=1, TF_CPP_MIN_LOG_LEVEL=0": (
        ["-c", IMPORT_KERAS],
        environment(TF_CPP_MIN_LOG_LEVEL="0", GRAFT_VERBOSE="1"),
    ),
}


@pytest.fixture(scope="module")
def imports() -> dict[str, subprocess.CompletedProcess]:
    """Each of IMPORT_RUNS, run at the same time (a TensorFlow import takes seconds)."""
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("TensorFlow is not installed")
    started = {
        name: subprocess.Popen(
            [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        for name, (args, env) in IMPORT_RUNS.items()
    }
    done = {}
    for name, process in started.items():
        out, err = process.communicate(timeout=600)
        done[name] = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    return done


@pytest.mark.slow
@pytest.mark.parametrize("name", ["default", "default, TF_CPP_MIN_LOG_LEVEL=0"])
def test_import_keras_hides_the_banners_by_default(imports, name):
    result = imports[name]
    assert result.returncode == 0, result.stderr
    assert banner_kinds(result.stderr) == [], result.stderr
    assert result.stdout == "stdout untouched\n"


@pytest.mark.slow
def test_graft_verbose_shows_the_banners_this_tensorflow_prints(imports):
    printed = banner_kinds(imports["reference"].stderr)
    if not printed:
        pytest.skip(
            "this TensorFlow prints no banner when imported, even with TF_CPP_MIN_LOG_LEVEL=0, "
            f"so there is none to show; it printed {imports['reference'].stderr!r}"
        )
    result = imports["GRAFT_VERBOSE=1, TF_CPP_MIN_LOG_LEVEL=0"]
    assert result.returncode == 0, result.stderr
    assert set(printed) <= set(banner_kinds(result.stderr)), result.stderr
    assert result.stdout == "stdout untouched\n"


# -- import_keras with stand-ins for keras and tensorflow -------------------------

CPU_BANNER = (
    b"2026-01-02 03:04:05.678901: I tensorflow/core/platform/cpu_feature_guard.cc:182] This TensorFlow binary is "
    b"optimized to use available CPU instructions in performance-critical operations.\n"
    b"To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the "
    b"appropriate compiler flags.\n"
)
UNKNOWN = b"W0000 00:00:1767323045.678901    1234 some_kernel.cc:42] something TensorFlow has not said before\n"
MISSING = b"E0000 00:00:1767323045.678901    1234 loader.cc:7] libcudart.so.12: cannot open shared object file\n"


@pytest.fixture
def stand_ins(tmp_path) -> pathlib.Path:
    """A ``keras`` that writes a banner and an unknown warning to fd 2, and a ``tensorflow`` that fails on demand."""
    (tmp_path / "keras").mkdir()
    (tmp_path / "keras" / "__init__.py").write_text(
        f"import os\nos.write(2, {CPU_BANNER + UNKNOWN!r})\n__version__ = '3.0.0'\n"
    )
    (tmp_path / "tensorflow").mkdir()
    (tmp_path / "tensorflow" / "__init__.py").write_text(
        "import os\n"
        "if os.environ.get('STAND_IN_FAILS'):\n"
        f"    os.write(2, {MISSING!r})\n"
        "    raise ImportError('libcudart.so.12: cannot open shared object file')\n"
    )
    return tmp_path


def stand_in_environment(folder: pathlib.Path, **changes: str | None) -> dict[str, str]:
    env = environment(**changes)
    env["PYTHONPATH"] = os.pathsep.join([str(folder), env["PYTHONPATH"]])
    return env


@POSIX
def test_a_line_that_is_not_a_banner_is_shown(stand_ins):
    result = python(
        """
        import graft.base.backend
        from graft.base.backend import import_keras
        print(import_keras().__version__)
        graft.base.backend.fd2_lines_hidden = None  # the next call does not hold fd 2 again
        print(import_keras().__version__)
        """,
        stand_in_environment(stand_ins),
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == UNKNOWN.decode()
    assert result.stdout == "3.0.0\n3.0.0\n"


def test_graft_verbose_shows_every_line(stand_ins):
    env = stand_in_environment(stand_ins, GRAFT_VERBOSE="1")
    result = python("from graft.base.backend import import_keras; import_keras()", env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == (CPU_BANNER + UNKNOWN).decode()
    assert result.stdout == ""


def test_a_failed_import_shows_everything_it_wrote(stand_ins):
    result = python(
        """
        from graft.base.backend import BackendMissing, import_keras
        try:
            import_keras()
        except BackendMissing as exc:
            print(exc)
        """,
        stand_in_environment(stand_ins, STAND_IN_FAILS="1"),
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == (CPU_BANNER + UNKNOWN + MISSING).decode()
    assert "libcudart.so.12: cannot open shared object file" in result.stdout
    assert "pip install 'keras-graft[cpu]'" in result.stdout


@pytest.mark.parametrize(("value", "shown"), [(None, False), ("", False), ("0", False), ("1", True), ("yes", True)])
def test_graft_verbose_values(value, shown):
    assert verbose({} if value is None else {"GRAFT_VERBOSE": value}) is shown


# -- fd2_lines_hidden ------------------------------------------------------------

BLOCK = """
import os, sys
from graft.base.backend import fd2_lines_hidden
os.write(2, b"before\\n")
with fd2_lines_hidden([r"^BANNER"]):
    os.write(2, b"BANNER one\\nreal error\\nBANNER two\\n")
    print("from Python", file=sys.stderr)
    os.write(1, b"stdout untouched\\n")
    os.write(2, b"no newline")
os.write(2, b"\\nafter\\n")
"""


@POSIX
@pytest.mark.parametrize("target", ["pipe", "file"])
def test_hidden_lines_go_and_the_others_are_shown_before_what_follows(tmp_path, target):
    if target == "pipe":
        result = python(BLOCK)
        err = result.stderr
    else:
        with open(tmp_path / "stderr", "w") as file:
            result = python(BLOCK, stderr=file)
        err = (tmp_path / "stderr").read_text()
    assert result.returncode == 0, err
    assert err == "before\nreal error\nfrom Python\nno newline\nafter\n"
    assert result.stdout == "stdout untouched\n"


@POSIX
def test_a_terminal_as_stderr():
    """graft in a terminal (with TOSTOP set): the lines are shown from the holder, in its own session."""
    result = python(
        """
        import os, pty, termios
        pid, terminal = pty.fork()
        if pid == 0:
            attributes = termios.tcgetattr(2)
            attributes[3] |= termios.TOSTOP
            termios.tcsetattr(2, termios.TCSANOW, attributes)
            from graft.base.backend import fd2_lines_hidden
            with fd2_lines_hidden([r"^BANNER"]):
                os.write(2, b"BANNER one\\nreal error\\n")
            os.write(2, b"after\\n")
            os._exit(0)
        shown = b""
        while True:
            try:
                chunk = os.read(terminal, 1024)
            except OSError:  # EIO: every process of the terminal's side is gone
                break
            if not chunk:
                break
            shown += chunk
        print(repr(shown.replace(b"\\r\\n", b"\\n")), os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "b'real error\\nafter\\n' 0\n"


@POSIX
def test_everything_is_shown_when_the_block_raises():
    result = python(
        """
        import os
        from graft.base.backend import fd2_lines_hidden
        with fd2_lines_hidden([r"^BANNER"]):
            os.write(2, b"BANNER one\\nreal error\\n")
            raise ValueError("the block failed")
        """
    )
    assert result.returncode == 1
    assert result.stderr.startswith("BANNER one\nreal error\nTraceback (most recent call last):\n")
    assert result.stderr.endswith("ValueError: the block failed\n")


@POSIX
def test_everything_is_shown_when_the_process_dies_in_the_block():
    """As when TensorFlow logs a fatal error (no AVX on this CPU, say) and aborts while it is imported."""
    result = python(
        """
        import os
        from graft.base.backend import fd2_lines_hidden
        with fd2_lines_hidden([r"^BANNER"]):
            os.write(2, b"BANNER one\\nF cpu_feature_guard.cc:1] compiled to use AVX instructions\\n")
            os.abort()
        """
    )
    assert result.returncode == -signal.SIGABRT
    assert result.stderr.startswith("BANNER one\nF cpu_feature_guard.cc:1] compiled to use AVX instructions\n")


def test_a_closed_fd2_stays_closed():
    result = python(
        """
        import os
        from graft.base.backend import fd2_lines_hidden
        os.close(2)
        with fd2_lines_hidden([r"^BANNER"]):
            os.write(1, b"in the block\\n")
        try:
            os.fstat(2)
        except OSError:
            print("fd 2 still closed")
        """
    )
    assert result.returncode == 0
    assert result.stdout == "in the block\nfd 2 still closed\n"


@POSIX
def test_under_capfd(capfd):
    before = os.fstat(2)
    for _ in range(2):  # and again: nothing left behind by the first
        with fd2_lines_hidden([r"^BANNER"]):
            os.write(2, b"BANNER one\nreal error\n")
            os.write(1, b"stdout untouched\n")
            print("from Python", file=sys.stderr)
        after = os.fstat(2)
        assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
        out, err = capfd.readouterr()
        # capfd's sys.stderr writes to its file itself, at once: the order is not fd 2's
        assert sorted(err.splitlines()) == ["from Python", "real error"]
        assert out == "stdout untouched\n"


@POSIX
def test_under_capsys(capsys):
    before = os.fstat(2)
    with fd2_lines_hidden([r"^BANNER"]):
        print("from Python", file=sys.stderr)  # to capsys's sys.stderr, not to fd 2
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
    assert capsys.readouterr().err == "from Python\n"
