"""``graft new-spec``: a commented starter spec from the installed plugins' params that ``graft validate`` passes,
for every installed extractor and data source that fit together; never over an existing file (issue #20)."""

from __future__ import annotations

import itertools

import pytest
import yaml

from graft.authoring.starter import StarterError, kinds_of, write_starter
from graft.commands.cli import main
from graft.plugins.registry import PluginError, Registry
from tests.docs.test_docs_examples import _make_files_it_reads, _png

REGISTRY = Registry.discover()
KINDS = kinds_of(REGISTRY)
PAIRS = list(itertools.product(KINDS["extractor"], KINDS["data source"]))
SERIES, IMAGES = {"gru", "conv1d"}, {"keras_app", "mobilenet"}


@pytest.mark.parametrize(("extractor", "data"), PAIRS, ids=[f"{e}-{d}" for e, d in PAIRS])
def test_every_installed_extractor_and_data_source_make_a_spec_graft_validate_passes(extractor, data, tmp_path,
                                                                                     monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    try:
        written = write_starter("spec.yaml", extractor, data, registry=REGISTRY)
    except StarterError as refused:  # the pair does not fit: said before anything is written
        assert str(refused).startswith(f"extractor '{extractor}' and data source '{data}' do not fit together")
        assert not (tmp_path / "spec.yaml").exists()
        assert not ({extractor, data} <= SERIES | {"synthetic", "npz"} or {extractor, data} <= IMAGES | {
            "image_folder", "sklearn_digits", "npz"}), f"{extractor} and {data} should fit"
        return
    text = (tmp_path / "spec.yaml").read_text()
    assert text.startswith(f"# A starter spec written by graft new-spec: extractor {extractor}, head dense")
    data_spec = yaml.safe_load(text)
    _make_files_it_reads(data_spec, tmp_path)  # the data a user puts where the spec says
    if data == "image_folder":  # two images a class, so that validation_split holds one out
        for folder in (tmp_path / "photos").iterdir():
            _png(folder / "002.png")
    assert main(["validate", "spec.yaml"]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.startswith(f"spec.yaml: valid — extractor {extractor}, heads label, stages train")
    assert bool(written.missing) == (data in ("npz", "image_folder"))  # their data is the user's own


def test_the_written_spec_says_what_each_params_field_takes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["new-spec", "series.yaml", "--extractor", "gru", "--data", "npz"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "wrote series.yaml: extractor gru, head dense, data npz\n"
    assert captured.err == ("  the data is not there yet: file not found: data/train.npz\n"
                            "next: put the data in place (or change its path), then graft validate series.yaml\n")
    text = (tmp_path / "series.yaml").read_text()
    assert "      layers: [{name: gru_1, units: 16}, {name: gru_2, units: 16}]  # a list of GRU layers; required\n" \
        in text
    assert "        inputs: x  # a string; default x\n" in text
    assert "        validation_split: 0.2  # a number; default 0.0\n" in text


def test_an_existing_file_is_never_replaced(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text("mine\n")
    assert main(["new-spec", "spec.yaml", "--extractor", "gru", "--data", "synthetic"]) == 1
    assert capsys.readouterr().err == "error: spec.yaml exists; nothing was written: choose another file name\n"
    assert (tmp_path / "spec.yaml").read_text() == "mine\n"


@pytest.mark.parametrize(("option", "kind"), [("--extractor", "extractor"), ("--data", "data source"),
                                              ("--head", "head")])
def test_an_unknown_name_lists_the_installed_ones(option, kind, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = {"--extractor": "gru", "--data": "synthetic", "--head": "dense"} | {option: "grux"}
    assert main(["new-spec", "spec.yaml", *itertools.chain.from_iterable(argv.items())]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"error: unknown {kind} 'grux'; installed {kind} plugins: {', '.join(KINDS[kind])}")
    assert not (tmp_path / "spec.yaml").exists()
    with pytest.raises(PluginError):
        write_starter("spec.yaml", "gru", "synthetic", "grux", registry=REGISTRY)


def test_a_plugin_without_starter_values_is_said_before_anything_is_written(install, tmp_path, monkeypatch):
    name = install("""
        import attrs
        import graft

        @attrs.frozen
        class Params:
            depth: int

        @graft.hookimpl
        def build_extractor(params: Params, input_shape):
            raise AssertionError("never built")
    """)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StarterError, match=rf"^no starter values for the required params of extractor plugin "
                                           rf"'{name}': depth \(the params class has no STARTER"):
        write_starter("spec.yaml", name, "synthetic")
    assert not (tmp_path / "spec.yaml").exists()


def test_an_extractor_and_a_data_source_of_other_sample_shapes_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StarterError, match=r"^extractor 'gru' and data source 'sklearn_digits' do not fit together in "
                       r"one spec: the extractor takes samples shaped like \(50, 8\), the data source gives "
                       r"\(32, 32, 3\)"):
        write_starter("spec.yaml", "gru", "sklearn_digits", registry=REGISTRY)
    assert not (tmp_path / "spec.yaml").exists()
