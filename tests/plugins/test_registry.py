"""Plugin discovery and lookup, with real (fake) distributions on disk.

Every test writes ``<name>-<version>.dist-info/{METADATA,entry_points.txt}`` and
the plugin modules into its own folder, puts that folder on ``sys.path`` and
discovers only there, so what is tested is the real entry-point machinery of
``importlib.metadata``.  Module names are unique per test (no import caching).
"""

from __future__ import annotations

import importlib
import itertools
import sys
import textwrap

import attrs
import pytest

import graft
from graft.builtins.policies import LayersParams
from graft.plugins.registry import PluginError, Registry, describe, enabled_names

_counter = itertools.count()


class FakeSite:
    """A folder of fake installed distributions and their plugin modules."""

    def __init__(self, root, tag: str) -> None:
        self.root = root
        self.tag = tag
        self.modules: list[str] = []

    def module(self, source: str, stem: str = "plugin") -> str:
        """Write a plugin module with a name unique to this test; return the name."""
        name = f"graftfake_{self.tag}_{stem}_{next(_counter)}"
        (self.root / f"{name}.py").write_text(textwrap.dedent(source))
        self.modules.append(name)
        return name

    def dist(self, name: str, entry_points: dict[str, str], version: str = "1.0", root=None) -> None:
        folder = (root or self.root) / f"{name.replace('-', '_')}-{version}.dist-info"
        folder.mkdir()
        (folder / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        lines = "".join(f"{key} = {value}\n" for key, value in entry_points.items())
        (folder / "entry_points.txt").write_text(f"[graft]\n{lines}\n[console_scripts]\nnot-graft = os:getcwd\n")

    def discover(self, enabled: set[str] | None = None, paths=None) -> Registry:
        importlib.invalidate_caches()
        return Registry.discover(paths=paths or [str(self.root)], enabled=enabled)


@pytest.fixture
def site(tmp_path, monkeypatch, request):
    """An empty fake site-packages on sys.path; GRAFT_PLUGINS unset."""
    monkeypatch.delenv("GRAFT_PLUGINS", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    tag = "".join(ch for ch in request.node.name if ch.isalnum())[:30]
    fake = FakeSite(tmp_path, tag)
    yield fake
    for name in fake.modules:
        sys.modules.pop(name, None)


HEAD = """
    import graft

    @graft.hookimpl
    def build_head(params, features, name):
        return ("head", name)
"""

EXTRACTOR = """
    import graft

    @graft.hookimpl
    def build_extractor(params, input_shape):
        return ("extractor", input_shape)
"""


def info_of(registry: Registry, name: str):
    (info,) = [info for info in registry.infos if info.name == name]
    return info


def error_of(registry: Registry, kind: str, name: str) -> str:
    with pytest.raises(PluginError) as caught:
        registry.get(kind, name)
    return str(caught.value)


# -- broken plugins --------------------------------------------------------


def test_plugin_raising_import_error_is_broken_and_the_others_still_work(site):
    broken = site.module("raise ImportError('needs libfoo >= 2')\n", "broken")
    head = site.module(HEAD, "head")
    site.dist("fakedist", {"shaky": broken, "steady": head})
    other = site.module(EXTRACTOR, "other")
    site.dist("otherdist", {"stack": f"{other}"})

    registry = site.discover()

    shaky = info_of(registry, "shaky")
    assert (shaky.status, shaky.error) == ("broken", "ImportError: needs libfoo >= 2")
    assert shaky.plugin is None and shaky.provides == ()
    assert info_of(registry, "steady").status == "ok"
    assert registry.names("head") == ["steady"]
    assert registry.names("extractor") == ["stack"]
    assert registry.get("head", "steady").plugin.build_head(None, "features", "level") == ("head", "level")
    assert registry.get("extractor", "stack").plugin.build_extractor(None, (4, 2)) == ("extractor", (4, 2))


def test_looking_up_a_broken_plugin_names_distribution_entry_point_and_cause(site):
    broken = site.module("import graftfake_no_such_dependency_xyz\n", "broken")
    site.dist("fakedist", {"shaky": broken})

    message = error_of(site.discover(), "extractor", "shaky")

    assert message == (
        f"extractor plugin 'shaky' is installed but failed to load "
        f"(distribution fakedist 1.0, entry point shaky = {broken}): "
        f"ModuleNotFoundError: No module named 'graftfake_no_such_dependency_xyz'"
    )


def test_entry_point_naming_a_missing_attribute_is_broken(site):
    module = site.module(HEAD)
    site.dist("fakedist", {"typo": f"{module}:Hed"})

    info = info_of(site.discover(), "typo")

    assert info.status == "broken"
    assert info.error.startswith("AttributeError:") and "Hed" in info.error


def test_plugin_class_whose_constructor_raises_is_broken_not_fatal(site):
    module = site.module(
        """
        import graft

        class Head:
            def __init__(self):
                raise RuntimeError("no licence key")

            @graft.hookimpl
            def build_head(self, params, features, name):
                return name
        """
    )
    site.dist("fakedist", {"fragile": f"{module}:Head", "steady": site.module(HEAD)})

    registry = site.discover()

    assert (info_of(registry, "fragile").status, info_of(registry, "fragile").error) == (
        "broken",
        "RuntimeError: no licence key",
    )
    assert registry.names("head") == ["steady"]


def test_misspelt_hookimpl_is_broken_with_a_suggestion(site):
    module = site.module(
        """
        import graft

        @graft.hookimpl
        def build_extractr(params, input_shape):
            return None
        """
    )
    site.dist("fakedist", {"typo": module, "steady": site.module(HEAD)})

    registry = site.discover()

    info = info_of(registry, "typo")
    assert info.status == "broken"
    assert info.error == "'build_extractr' is not a graft hook — did you mean 'build_extractor'?"
    assert "is not a graft hook — did you mean 'build_extractor'?" in error_of(registry, "extractor", "typo")
    assert registry.names("head") == ["steady"]
    assert registry.get("head", "steady").plugin.build_head(None, "f", "level") == ("head", "level")


def test_several_unknown_hookimpls_are_all_named(site):
    module = site.module(
        """
        import graft

        @graft.hookimpl
        def load_dta(params, base_dir):
            return None

        @graft.hookimpl
        def frobnicate(params):
            return None
        """
    )
    site.dist("fakedist", {"typos": module})

    info = info_of(site.discover(), "typos")

    assert info.error == (
        "'frobnicate' is not a graft hook (hooks: build_extractor, build_head, transfer_policy, load_data, "
        "extractor_layers, head_layers); "
        "'load_dta' is not a graft hook — did you mean 'load_data'?"
    )


def test_hookimpl_with_an_argument_the_hook_does_not_have_is_broken(site):
    module = site.module(
        """
        import graft

        @graft.hookimpl
        def build_head(params, feature, name):
            return None
        """
    )
    site.dist("fakedist", {"wrongarg": module})

    info = info_of(site.discover(), "wrongarg")

    assert info.status == "broken"
    assert "feature" in info.error and "build_head" in info.error


def test_module_without_hooks_is_broken(site):
    module = site.module("def build_head(params, features, name):\n    return None\n")
    site.dist("fakedist", {"plain": module})

    registry = site.discover()

    info = info_of(registry, "plain")
    assert info.status == "broken"
    assert info.error == "implements no graft hook (build_extractor, build_head, transfer_policy, load_data)"
    assert registry.pm.get_plugins() == set()


# -- conflicts -------------------------------------------------------------


def test_two_distributions_claiming_one_name_conflict(site):
    site.dist("fake-a", {"twin": site.module(HEAD, "a")})
    site.dist("fake-b", {"twin": site.module(HEAD, "b")})
    site.dist("fake-c", {"single": site.module(HEAD, "c")})

    registry = site.discover()

    twins = [info for info in registry.infos if info.name == "twin"]
    assert sorted(info.distribution for info in twins) == ["fake-a", "fake-b"]
    assert [info.status for info in twins] == ["conflict", "conflict"]
    assert registry.names("head") == ["single"]  # neither twin is callable
    assert len(registry.pm.get_plugins()) == 1
    message = error_of(registry, "head", "twin")
    assert message.startswith("head plugin 'twin': name 'twin' is claimed by 2 distributions: ")
    assert "fake-a" in message and "fake-b" in message
    assert message.endswith("; uninstall all but one")


def test_three_distributions_claiming_one_name_all_conflict(site):
    for letter in "xyz":
        site.dist(f"fake-{letter}", {"triple": site.module(HEAD, letter)})

    registry = site.discover()

    triples = [info for info in registry.infos if info.name == "triple"]
    assert [info.status for info in triples] == ["conflict"] * 3
    for info in triples:
        assert info.error.startswith("name 'triple' is claimed by 3 distributions: ")
        assert all(f"fake-{letter}" in info.error for letter in "xyz")
    assert registry.pm.get_plugins() == set()


def test_the_same_distribution_on_two_paths_is_not_a_conflict(site, tmp_path):
    module = site.module(HEAD)
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    site.dist("fakedist", {"once": module}, root=first)
    site.dist("fakedist", {"once": module}, version="2.0", root=second)

    registry = site.discover(paths=[str(first), str(second)])

    assert [(info.status, info.version) for info in registry.infos] == [("ok", "1.0")]


def test_a_name_two_distributions_claim_conflicts_without_importing_either(site):
    first, second = site.module(HEAD, "a"), site.module(HEAD, "b")
    site.dist("fake-a", {"twin": first})
    site.dist("fake-b", {"twin": second})

    registry = site.discover()

    message = error_of(registry, "head", "twin")
    assert "name 'twin' is claimed by 2 distributions: fake-a, fake-b" in message
    assert first not in sys.modules and second not in sys.modules


# -- imported when named ---------------------------------------------------------


def test_discover_lists_the_plugins_and_imports_each_only_when_it_is_named(site):
    head, extractor = site.module(HEAD, "head"), site.module(EXTRACTOR, "extractor")
    broken = site.module("raise ImportError('needs libfoo')\n", "broken")
    site.dist("fakedist", {"steady": head, "stack": extractor, "shaky": broken})

    registry = site.discover()

    assert [(info.name, info.status) for info in registry.listed] == [
        ("steady", "listed"), ("stack", "listed"), ("shaky", "listed")
    ]
    assert not {head, extractor, broken} & set(sys.modules), "discovery imports no plugin"
    assert registry.get("head", "steady").plugin.build_head(None, "f", "level") == ("head", "level")
    assert head in sys.modules and extractor not in sys.modules and broken not in sys.modules
    assert info_of(registry, "steady").status == "ok"  # infos imports and checks the rest
    assert extractor in sys.modules and info_of(registry, "shaky").status == "broken"


def test_a_broken_plugin_no_spec_names_costs_nothing_until_all_are_listed(site):
    site.dist("fakedist", {"steady": site.module(HEAD), "shaky": site.module("raise RuntimeError('boom')\n")})

    registry = site.discover()

    assert registry.params_class("head", "steady") is None  # named: imported and working
    assert [info.status for info in registry.listed] == ["ok", "listed"]
    assert registry.names("head") == ["steady"]  # every plugin imported to answer
    assert [info.status for info in registry.listed] == ["ok", "broken"]


# -- lookup messages ---------------------------------------------------------


@pytest.fixture
def three(site):
    site.dist("fakedist", {"wide": site.module(HEAD), "narrow": site.module(HEAD), "stack": site.module(EXTRACTOR)})
    return site.discover()


def test_unknown_name_lists_installed_names_of_that_kind_and_suggests(three):
    assert error_of(three, "head", "wid") == (
        "unknown head 'wid'; installed head plugins: narrow, wide — did you mean 'wide'?"
    )
    assert error_of(three, "head", "zzzz") == "unknown head 'zzzz'; installed head plugins: narrow, wide"
    assert error_of(three, "policy", "wide_open") == "unknown policy 'wide_open'; installed policy plugins: (none)"


def test_asking_for_a_head_under_an_extractor_name_says_what_it_is(three):
    assert error_of(three, "head", "stack") == (
        "'stack' is an extractor plugin, not a head; installed head plugins: narrow, wide"
    )
    assert error_of(three, "extractor", "wide").startswith(
        "'wide' is a head plugin, not an extractor; installed extractor plugins: stack"
    )


def test_get_returns_the_plugin_and_its_origin(three):
    info = three.get("extractor", "stack")
    assert info.provides == ("extractor",)
    assert three.origin("extractor", "stack") == (
        f"distribution fakedist 1.0, entry point stack = {info.entry_point}"
    )
    assert info.entry_point.startswith("graftfake_")


# -- GRAFT_PLUGINS -----------------------------------------------------------


def test_enabled_names_parses_the_variable():
    assert enabled_names({}) is None
    assert enabled_names({"GRAFT_PLUGINS": " gru , conv1d,,"}) == {"gru", "conv1d"}
    assert enabled_names({"GRAFT_PLUGINS": ""}) == set()


def test_graft_plugins_restricts_third_party_plugins(site, monkeypatch):
    keep = site.module(HEAD, "keep")
    drop = site.module(HEAD, "drop")
    site.dist("fakedist", {"keep": keep, "drop": drop})
    monkeypatch.setenv("GRAFT_PLUGINS", "keep, other")

    registry = site.discover()

    assert registry.names("head") == ["keep"]
    dropped = info_of(registry, "drop")
    assert (dropped.status, dropped.error) == ("disabled", "not listed in GRAFT_PLUGINS")
    assert drop not in sys.modules, "a disabled plugin must not even be imported"
    assert error_of(registry, "head", "drop") == (
        f"head plugin 'drop' is installed (distribution fakedist 1.0, entry point drop = {drop}) "
        "but GRAFT_PLUGINS does not list it"
    )


def test_graft_plugins_never_disables_the_core_built_ins(monkeypatch):
    monkeypatch.setenv("GRAFT_PLUGINS", "gru")

    registry = Registry.discover()

    status = {info.name: (info.status, info.distribution) for info in registry.infos}
    for builtin in ("dense", "continue", "replace_head", "layers", "fine_tune_top", "npz", "synthetic"):
        assert status[builtin] == ("ok", "keras-graft"), builtin
    assert status["gru"][0] == "ok"
    assert status["conv1d"][0] == "disabled"
    assert registry.names("extractor") == ["gru"]
    assert registry.names("head") == ["dense"]


# -- in-process registration -----------------------------------------------


class InProcessHead:
    """A head plugin class, registered without any distribution."""

    @graft.hookimpl
    def build_head(self, params, features, name):
        return ("in-process", name)


def test_register_in_process_plugin_class():
    registry = Registry()

    info = registry.register(InProcessHead, "mine")

    assert (info.status, info.provides, info.distribution) == ("ok", ("head",), "(in-process)")
    assert isinstance(registry.get("head", "mine").plugin, InProcessHead)
    assert registry.get("head", "mine").plugin.build_head(None, "f", "out") == ("in-process", "out")
    assert "mine" not in Registry().names("head"), "registration is per Registry"


def test_register_rejects_a_second_claim_and_an_object_without_hooks():
    registry = Registry()
    registry.register(InProcessHead, "mine")

    with pytest.raises(PluginError, match=r"plugin 'mine' \(.*\) conflict: name 'mine' is claimed by 2 distributions"):
        registry.register(InProcessHead(), "mine", distribution="other-dist", version="1.0")
    assert [info.status for info in registry.infos] == ["conflict", "conflict"]

    with pytest.raises(PluginError, match="broken: implements no graft hook"):
        registry.register(object(), "nothing")


# -- params_class ------------------------------------------------------------


PARAMS_PLUGIN = """
    {future}
    import attrs
    import graft

    @attrs.frozen
    class HeadParams:
        units: int

    @graft.hookimpl
    def build_head(params: HeadParams, features, name):
        return None
"""


@pytest.mark.parametrize("future", ["", "from __future__ import annotations"])
def test_params_class_reads_the_params_annotation(site, future):
    module = site.module(PARAMS_PLUGIN.format(future=future))
    site.dist("fakedist", {"annotated": module, "bare": site.module(HEAD)})

    registry = site.discover()

    params_class = registry.params_class("head", "annotated")
    assert params_class is sys.modules[module].HeadParams
    assert attrs.has(params_class)
    assert registry.params_class("head", "bare") is None


def test_params_class_of_real_policies(registry):
    assert registry.params_class("policy", "layers") is LayersParams
    # Continue.transfer_policy has no params argument at all (pluggy allows a subset)
    assert registry.params_class("policy", "continue") is None


def test_params_class_of_an_unknown_plugin_raises_the_lookup_error(three):
    with pytest.raises(PluginError, match="unknown head 'wid'"):
        three.params_class("head", "wid")


# -- describe ----------------------------------------------------------------


def test_describe_rows(site, monkeypatch):
    site.dist("fakedist", {"wide": site.module(HEAD), "shaky": site.module("raise ImportError('gone')\n")})
    site.dist("fake-x", {"twin": site.module(HEAD, "x"), "off": site.module(EXTRACTOR)}, version="0.2")
    site.dist("fake-y", {"twin": site.module(HEAD, "y")})
    monkeypatch.setenv("GRAFT_PLUGINS", "wide,shaky,twin")
    registry = site.discover()
    registry.register(InProcessHead, "local")

    rows = describe(registry.infos)

    assert [row["name"] for row in rows] == ["local", "off", "shaky", "twin", "twin", "wide"]
    by_name = {row["name"]: row for row in rows}
    assert by_name["wide"] == {"name": "wide", "provides": "head", "distribution": "fakedist 1.0", "status": "ok"}
    assert by_name["shaky"] == {
        "name": "shaky",
        "provides": "-",
        "distribution": "fakedist 1.0",
        "status": "broken: ImportError: gone",
    }
    assert by_name["off"] == {
        "name": "off",
        "provides": "-",
        "distribution": "fake-x 0.2",
        "status": "disabled: not listed in GRAFT_PLUGINS",
    }
    assert by_name["local"]["distribution"] == "(in-process)"
    twins = [row for row in rows if row["name"] == "twin"]
    assert sorted(row["distribution"] for row in twins) == ["fake-x 0.2", "fake-y 1.0"]
    assert all(row["status"].startswith("conflict: name 'twin' is claimed by 2 distributions") for row in twins)


def test_graft_plugins_lists_a_conflict_and_exits_non_zero(site, capsys):
    from graft.commands.cli import main

    site.dist("fake-x", {"twin": site.module(HEAD, "x")})
    site.dist("fake-y", {"twin": site.module(HEAD, "y")})

    assert main(["plugins"]) == 1

    captured = capsys.readouterr()
    assert [line for line in captured.out.splitlines() if line.startswith("twin ")] != []
    assert captured.err == "error: twin: claimed by more than one distribution; uninstall all but one of each\n"


def test_graft_plugins_exits_zero_without_a_conflict(capsys):
    from graft.commands.cli import main

    assert main(["plugins", "--format", "json"]) == 0
    assert capsys.readouterr().err == ""
