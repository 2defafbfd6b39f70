"""The installed distributions are releasable: one version, ``py.typed`` shipped,
plugins pinned below the next pre-1.0 minor, and plugins built on the public API only.

The checks read what is installed (``importlib.metadata``), so under tox they check
the built wheels; the in-repo plugins are the ``plugins/*/pyproject.toml`` beside
this folder.  Each checker is also run on a bad input, so that it can fail.
"""

from __future__ import annotations

import ast
import importlib.metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

import graft

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[1]
CORE = "keras-graft"
# Submodules documented for plugin authors: ``graft.validators`` for params, ``graft.testing`` for their tests.
PUBLIC_SUBMODULES = frozenset({"validators", "testing"})
PUBLIC = frozenset(graft.__all__) | PUBLIC_SUBMODULES | {"__version__"}
# The next minor may break the hook API while it is pre-1.0; a plugin must not accept it.
def _pyproject(path: Path) -> dict:
    with path.open("rb") as file:
        return tomllib.load(file)


def in_repo_plugins() -> dict[str, Path]:
    """Distribution name -> plugin folder, for every ``plugins/*/pyproject.toml``."""
    found = {_pyproject(path)["project"]["name"]: path.parent for path in sorted(REPO.glob("plugins/*/pyproject.toml"))}
    assert found, f"no plugins/*/pyproject.toml under {REPO}: run the tests from the repository"
    return found


def plugin_sources(folder: Path) -> list[Path]:
    """The Python files of the packages a plugin's pyproject ships (not its tests, not ``build/``)."""
    packages = _pyproject(folder / "pyproject.toml")["tool"]["setuptools"]["packages"]
    files = [path for package in packages for path in sorted((folder / package.replace(".", "/")).rglob("*.py"))]
    assert files, f"{folder}: no source files in the packages {packages}"
    return files


def private_graft_uses(source: str, filename: str = "<source>") -> list[str]:
    """``file:line: what`` for every import or attribute of ``graft`` outside its public names."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        used: list[str] = []
        if isinstance(node, ast.Import):
            used = [alias.name for alias in node.names if alias.name.startswith("graft.")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            if node.module == "graft":
                used = [f"graft.{alias.name}" for alias in node.names]
            elif node.module.startswith("graft."):
                used = [node.module]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "graft":
            used = [f"graft.{node.attr}"]
        for name in used:
            if name.split(".")[1] not in PUBLIC:
                found.append(f"{filename}:{node.lineno}: {name}")
    return found


def graft_bound_problem(requirements: list[str] | None, version: str) -> str | None:
    """Why a plugin's ``Requires-Dist`` list does not hold keras-graft to ``version``'s minor, or None."""
    specifiers = [
        requirement.specifier
        for requirement in map(Requirement, requirements or [])
        if canonicalize_name(requirement.name) == CORE and requirement.marker is None
    ]
    if not specifiers:
        return f"no requirement on {CORE}"
    specifier = SpecifierSet(",".join(str(spec) for spec in specifiers))
    if not specifier.contains(version):
        return f"{CORE}{specifier} excludes the current {version}"
    major, minor = Version(version).release[:2]
    next_minor = f"{major}.{minor + 1}.0"  # the hook API may change in the next minor before 1.0
    if specifier.contains(next_minor, prereleases=True):
        return f"{CORE}{specifier or ' (any version)'} admits {next_minor}: add <{major}.{minor + 1}"
    return None


def test_installed_version_is_graft_version():
    installed = importlib.metadata.version(CORE)
    assert installed == graft.__version__, (
        f"{CORE} is installed as {installed} but graft.__version__ is {graft.__version__}: reinstall the core"
    )


def test_py_typed_ships_next_to_graft():
    package = Path(graft.__file__).parent
    assert (package / "py.typed").is_file(), f"no py.typed in {package}"
    recorded = {str(path).replace("\\", "/") for path in importlib.metadata.files(CORE) or []}
    if "graft/__init__.py" in recorded:  # a regular install records its files; an editable one does not
        assert "graft/py.typed" in recorded, f"{CORE}'s RECORD lists no graft/py.typed"


@pytest.mark.parametrize("name", sorted(in_repo_plugins()))
def test_plugin_requires_graft_below_next_minor(name):
    try:
        requirements = importlib.metadata.requires(name)
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(f"the in-repo plugin {name} is not installed")
    problem = graft_bound_problem(requirements, importlib.metadata.version(CORE))
    assert problem is None, f"{name}: {problem}"


@pytest.mark.parametrize("name", sorted(in_repo_plugins()))
def test_plugin_imports_only_public_graft(name):
    folder = in_repo_plugins()[name]
    found = [
        use
        for path in plugin_sources(folder)
        for use in private_graft_uses(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))
    ]
    assert not found, "export these from graft (graft/__init__.py, __all__) and import them from there:\n" + "\n".join(
        found
    )


@pytest.mark.parametrize(
    "pyproject", [REPO / "pyproject.toml", *sorted(REPO.glob("plugins/*/pyproject.toml"))], ids=lambda p: p.parent.name
)
def test_build_requires_setuptools_that_reads_spdx_license(pyproject):
    requires = [Requirement(text) for text in _pyproject(pyproject)["build-system"]["requires"]]
    (setuptools,) = [requirement for requirement in requires if requirement.name == "setuptools"]
    # setuptools 68-76 reject `license = "MIT"` (a PEP 639 SPDX string)
    assert not setuptools.specifier.contains("76.1"), f"{pyproject}: setuptools{setuptools.specifier} admits 76"


# -- the checkers fail on bad input ---------------------------------------------------------


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from graft.problems import GraftError", ["<source>:1: graft.problems"]),
        ("import graft.registry", ["<source>:1: graft.registry"]),
        ("from graft import Registry", ["<source>:1: graft.Registry"]),
        ("import graft\nx = graft.problems.did_you_mean", ["<source>:2: graft.problems"]),
        ("import graft\nfrom graft import GraftError, did_you_mean, validators\ngraft.SpecProblem", []),
        ("from graft.validators import positive\nfrom graft_mobilenet.errors import MobileNetError", []),
    ],
)
def test_private_graft_uses_flags_internals(source, expected):
    assert private_graft_uses(source) == expected


@pytest.mark.parametrize(
    "requirements, expected",
    [
        (None, "no requirement on keras-graft"),
        (["scikit-learn"], "no requirement on keras-graft"),
        (["keras-graft"], "keras-graft (any version) admits 0.2.0: add <0.2"),
        (["keras_graft>=0.1"], "keras-graft>=0.1 admits 0.2.0: add <0.2"),
        (["keras-graft<0.1"], "keras-graft<0.1 excludes the current 0.1.0"),
        (["keras-graft<0.2,>=0.1", "scikit-learn"], None),
    ],
)
def test_graft_bound_problem_flags_missing_upper_bound(requirements, expected):
    assert graft_bound_problem(requirements, "0.1.0") == expected
