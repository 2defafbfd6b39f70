"""The entry-point reader finds what ``importlib.metadata`` finds, in its order, without importing it."""

from __future__ import annotations

import importlib
import importlib.metadata
import subprocess
import sys
import zipfile

import pytest

from graft.plugins.entrypoints import EntryPoint, distributions_with


def _importlib(group: str, paths=None) -> list[tuple[str, str, list[tuple[str, str]]]]:
    where = {"path": paths} if paths is not None else {}
    found = []
    for dist in importlib.metadata.distributions(**where):
        points = [(point.name, point.value) for point in dist.entry_points if point.group == group]
        if points:
            found.append((dist.metadata["Name"] or "(unnamed)", dist.version, points))
    return found


def _ours(group: str, paths=None) -> list[tuple[str, str, list[tuple[str, str]]]]:
    return [(dist.name, dist.version, [(point.name, point.value) for point in dist.entry_points])
            for dist in distributions_with(group, paths)]


def test_the_installed_plugins_as_importlib_finds_them():
    assert _ours("graft") == _importlib("graft")
    assert _ours("console_scripts") == _importlib("console_scripts")
    assert any(name == "keras-graft" for name, _, _ in _ours("graft"))


def test_dist_info_and_egg_info_folders_comments_and_a_zip(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    info = site / "graft_one-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: graft-one\nVersion: 1.2\n\nName: not this\n")
    (info / "entry_points.txt").write_text(
        "# a comment\n[console_scripts]\nx = os:getcwd\n\n[graft]\n  one = os.path : join  \n"
        "two=os [extra]\n# three = nothing\n"
    )
    egg = site / "graft_two.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text("Metadata-Version: 1.2\nName: graft_two\nVersion: 0.3\n")
    (egg / "entry_points.txt").write_text("[graft]\nthree = os.path:join\n")
    other = site / "other-1.0.dist-info"  # no graft entry points: not listed
    other.mkdir()
    (other / "METADATA").write_text("Name: other\nVersion: 1.0\n")
    (other / "entry_points.txt").write_text("[console_scripts]\nother = os:getcwd\n")
    zipped = tmp_path / "zipped.zip"  # a zip on the path is read through importlib.metadata
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("graft_zip-2.0.dist-info/METADATA", "Name: graft-zip\nVersion: 2.0\n")
        archive.writestr("graft_zip-2.0.dist-info/entry_points.txt", "[graft]\nzip = os\n")
    paths = [str(site), str(zipped), str(tmp_path / "missing")]
    importlib.invalidate_caches()
    assert _ours("graft", paths) == _importlib("graft", paths)
    assert sorted(name for name, _, _ in _ours("graft", paths)) == ["graft-one", "graft-zip", "graft_two"]


def test_an_entry_point_loads_a_module_or_an_attribute():
    import os.path

    assert EntryPoint("one", "os.path : join").load() is os.path.join
    assert EntryPoint("two", "os.path [extra]").load() is os.path


@pytest.mark.slow
def test_listing_plugins_imports_no_importlib_metadata():
    probe = ("import sys\nfrom graft.plugins.registry import Registry\nRegistry.discover()\n"
             "print('importlib.metadata' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_a_finder_that_lists_distributions_itself_is_asked(tmp_path, monkeypatch):
    """A finder on sys.meta_path with find_distributions (a zipapp's, an import hook's) lists plugins only it
    knows: the reader then asks importlib.metadata, which asks every finder."""
    info = tmp_path / "graft_hooked-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: graft-hooked\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text("[graft]\nhooked = graft_hooked\n")

    class Finder:
        @staticmethod
        def find_spec(*_args, **_kwargs):
            return None

        @staticmethod
        def find_distributions(_context=None):
            return iter([importlib.metadata.PathDistribution(info)])

    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, Finder])
    ours = _ours("graft")
    assert ("graft-hooked", "0.3", [("hooked", "graft_hooked")]) in ours
    assert ours == _importlib("graft")
