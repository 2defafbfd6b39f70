"""``graft new-plugin``: what a user does, for real.

The four kinds are written into ``tmp_path``, pip-installed (``--no-deps``, offline,
no build isolation) into one throwaway environment that sees the packages of the
environment running the suite through a ``.pth`` file, and their own tests run there
with pytest: they must pass as written. Nothing is installed where the suite runs.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from graft.authoring.scaffold import KINDS, plugin_files
from graft.commands.cli import main
from tests.test_package import PUBLIC, graft_bound_problem, private_graft_uses, tomllib

NAMES = {kind: f"scaffolded_{kind}" for kind in KINDS}


def installer(venv: Path) -> tuple[Path, list[str]]:
    """Make the throwaway environment ``venv``; its Python and the command that installs into it.

    uv when it is on PATH (a venv in 0.1 s); else ``python -m venv`` with the pip that ensurepip brings.
    """
    uv = shutil.which("uv")
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if uv:
        subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True, timeout=120)
        return python, [uv, "pip", "install", "-q", "--no-cache", "--offline", "--python", str(python)]
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    return python, [str(python), "-m", "pip", "install", "-q", "--no-index", "--disable-pip-version-check"]


def see_this_environment(python: Path) -> None:
    """A .pth in ``python``'s site-packages that adds this environment's (their .pth files too: editable installs)."""
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout.strip()
    ours = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    lines = "".join(f"import site; site.addsitedir({path!r})\n" for path in ours)
    Path(purelib, "_graft_test_parent_environment.pth").write_text(lines)


@pytest.mark.slow
def test_every_kind_installs_and_passes_its_own_tests(tmp_path, capsys):
    started = time.perf_counter()
    folders = []
    for kind, name in NAMES.items():
        assert main(["new-plugin", name, "--kind", kind, "--output", str(tmp_path / "src")]) == 0
        folders.append(tmp_path / "src" / f"graft-{name.replace('_', '-')}")
    assert "graft-scaffolded-data/ (4 files): data plugin 'scaffolded_data'\n" in capsys.readouterr().out
    python, install = installer(tmp_path / "venv")
    see_this_environment(python)
    # --no-build-isolation: setuptools comes from this environment, so nothing is downloaded
    subprocess.run([*install, "--no-deps", "--no-build-isolation", *map(str, folders)], check=True, timeout=600)
    installed = time.perf_counter()
    (tmp_path / "src" / "pytest.ini").write_text("[pytest]\n")  # beside the plugins: no other config is picked up
    env = {key: value for key, value in os.environ.items() if key not in ("GRAFT_PLUGINS", "PYTHONPATH")}
    result = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml", str(tmp_path / "report.xml"),
         *map(str, folders)],
        cwd=tmp_path / "src", capture_output=True, text=True, env=env, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    cases = ElementTree.parse(tmp_path / "report.xml").getroot().iter("testcase")
    ran = {}
    for case in cases:
        assert not list(case), f"{case.get('classname')}::{case.get('name')} did not pass"  # no failure, skip, error
        ran.setdefault(case.get("classname").rsplit(".", 1)[-1], []).append(case.get("name"))
    assert {module: "test_conformance" in tests for module, tests in ran.items()} == {
        f"test_{name}": True for name in NAMES.values()
    }
    print(f"scaffold, venv, install: {installed - started:.1f} s; their tests: {time.perf_counter() - installed:.1f} s")
    for name in NAMES.values():  # the environment running the suite is untouched
        with pytest.raises(importlib.metadata.PackageNotFoundError):
            importlib.metadata.distribution(f"graft-{name.replace('_', '-')}")
        assert not list(Path(sysconfig.get_paths()["purelib"]).glob(f"graft_{name}*"))


# -- what is written, without installing it ---------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_written_files_use_only_public_graft_and_pin_the_minor(kind):
    files = plugin_files("my_plugin", kind)
    assert set(files) == {"pyproject.toml", "README.md", "graft_my_plugin/__init__.py", "tests/test_my_plugin.py"}
    for path in ("graft_my_plugin/__init__.py", "tests/test_my_plugin.py"):
        compile(files[path], path, "exec")
        assert private_graft_uses(files[path], path) == [], f"only {sorted(PUBLIC)}"
    pyproject = tomllib.loads(files["pyproject.toml"])
    assert pyproject["project"]["entry-points"]["graft"] == {"my_plugin": "graft_my_plugin"}
    assert pyproject["project"]["name"] == "graft-my-plugin"
    assert graft_bound_problem(pyproject["project"]["dependencies"], importlib.metadata.version("keras-graft")) is None
    assert "license" not in pyproject["project"] and "None chosen yet" in files["README.md"]


def test_mit_licence_names_the_author_and_the_year(tmp_path):
    assert main(["new-plugin", "lic", "--kind", "head", "--license", "MIT", "--author", "Ada Lovelace",
                 "--output", str(tmp_path)]) == 0
    folder = tmp_path / "graft-lic"
    assert (folder / "LICENSE").read_text().startswith(f"MIT License\n\nCopyright (c) {time.localtime().tm_year} Ada")
    assert 'license = "MIT"\nlicense-files = ["LICENSE"]\n' in (folder / "pyproject.toml").read_text()


@pytest.mark.parametrize("name", ["My-Plugin", "1st", "a__b", "_a", "a_", "", "ünï", "with space", "x" * 41])
def test_a_bad_name_is_refused_with_what_to_use(name, tmp_path, capsys):
    assert main(["new-plugin", name, "--kind", "head", "--output", str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"error: plugin name {name!r} cannot be used: use lowercase letters, digits and single")
    assert list(tmp_path.iterdir()) == []


def test_a_name_an_installed_plugin_has_is_refused(tmp_path, capsys):
    assert main(["new-plugin", "dense", "--kind", "head", "--output", str(tmp_path)]) == 1
    version = importlib.metadata.version("keras-graft")
    assert capsys.readouterr().err == (
        f"error: plugin name 'dense' is taken by keras-graft {version}, installed here: "
        "two plugins of one name conflict; choose another\n"
    )


def test_an_existing_folder_is_never_touched(tmp_path, capsys):
    folder = tmp_path / "graft-mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    assert main(["new-plugin", "mine", "--kind", "policy", "--output", str(tmp_path)]) == 1
    assert capsys.readouterr().err == (
        f"error: {folder} already exists (a folder); nothing was written: remove it or choose another --output\n"
    )
    assert [path.name for path in folder.iterdir()] == ["notes.txt"] and (folder / "notes.txt").read_text() == "mine"


def test_output_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["new-plugin", "mine", "--kind", "data", "--output", str(tmp_path / "file")]) == 1
    error = capsys.readouterr().err
    assert error == f"error: --output {tmp_path / 'file'} is a file, not a folder; nothing was written\n"


def test_templates_ship_in_the_installed_distribution():
    recorded = {str(path).replace("\\", "/") for path in importlib.metadata.files("keras-graft") or []}
    if "graft/__init__.py" not in recorded:
        pytest.skip("an editable install records no files; tox's regular install checks the wheel")
    for kind in KINDS:
        for template in ("module.py", "test.py", "usage.yaml"):
            assert f"graft/authoring/scaffold/templates/{kind}/{template}.tmpl" in recorded
    assert {"graft/authoring/scaffold/templates/pyproject.toml.tmpl",
            "graft/authoring/scaffold/templates/LICENSE.tmpl"} <= recorded
