"""What a run folder says about where its results came from.

``<out>/spec.resolved.yaml`` is the spec the run trained, as checked (``--set``
overrides applied), with a header naming its file and overrides; each stage's
``report.json`` says the versions it ran with (``graft.records.report.Versions``, with the
source commit when keras-graft runs from a git checkout).  The
chief writes the spec once the run directory is locked and the run goes on; an
earlier run's copy that differs (another spec, other overrides) is moved aside,
never overwritten.
"""

from __future__ import annotations

import functools
import os
import shlex

import yaml

from graft.base.files import fsync_path
from graft.plugins.registry import CORE_DISTRIBUTION, Registry
from graft.records.report import Versions
from graft.records.rundir import PARTIAL, RunDir, RunError
from graft.spec.records import Spec, Stage
from graft.spec.specfile import DICT_ANCHOR, SpecFile, one_line

RESOLVED = "spec.resolved.yaml"


def stage_versions(registry: Registry, spec: Spec, stage: Stage, keras) -> Versions:
    """The versions stage ``stage`` runs with: TensorFlow and Keras as imported, the backend Keras runs on,
    keras-graft, and the distribution of each plugin it uses (extractor, the heads it trains, policy, data
    source)."""
    import tensorflow

    from graft._version import __version__

    used = [("extractor", spec.model.extractor.plugin), ("policy", stage.policy.plugin),
            ("data source", stage.data.source), *(("head", head.plugin) for head in spec.heads_of(stage).values())]
    plugins = {}
    for kind, name in used:
        info = registry.get(kind, name)
        if info.distribution.lower().replace("_", "-") != CORE_DISTRIBUTION:
            plugins[info.distribution] = info.version
    return Versions(tensorflow=tensorflow.__version__, keras=keras.__version__, backend=keras.backend.backend(),
                    keras_graft=__version__,
                    commit=source_commit(), plugins=dict(sorted(plugins.items())))


@functools.cache
def source_commit() -> str | None:
    """The git commit of the checkout keras-graft runs from, ``+dirty`` if ``core/`` has uncommitted changes;
    None when keras-graft was installed from a package (or git is not there to ask)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # .../core/graft
    root = os.path.dirname(os.path.dirname(package))
    if not (os.path.exists(os.path.join(root, ".git")) and os.path.basename(os.path.dirname(package)) == "core"):
        return None
    import subprocess  # here: re-running a finished run imports this module and asks git nothing

    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        status = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no", "--", "core"],
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0 or status.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if status.stdout.strip() else "")


def spec_path(spec_file: SpecFile) -> str | None:
    """The spec file's path as it was given (None for a spec given as a dict)."""
    return None if os.path.basename(spec_file.path) == DICT_ANCHOR else spec_file.path


def resolved_text(spec_file: SpecFile) -> str:
    """The spec as checked, as YAML, under a header saying where it came from."""
    given = spec_path(spec_file)
    source = "a dict given to the Python API (graft.load_spec / graft.run)" if given is None else os.path.abspath(given)
    sets = " ".join(f"--set {shlex.quote(override.text)}" for override in spec_file.overrides)
    header = [
        "# The spec this run trained, as graft run checked it (written by graft run; editing it changes nothing).",
        f"# from: {source}",
        f"# overrides: {sets or 'none'}",
        f"# relative paths in it are relative to {spec_file.base_dir}",
    ]
    body = yaml.dump(spec_file.document.data, Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                     default_flow_style=None)  # lists and mappings of plain values on one line, as specs are written
    return "\n".join(one_line(line) for line in header) + "\n" + body


class _Dumper(yaml.SafeDumper):
    """``safe_dump`` without anchors: every value written out where it is used."""

    def ignore_aliases(self, data) -> bool:
        return True


def write_resolved_spec(run_dir: RunDir, spec_file: SpecFile) -> str:
    """Write ``<out>/spec.resolved.yaml`` (flushed to disk, renamed into place) unless the same text is there;
    a different one is moved aside (``<out>/spec.resolved.yaml.replaced-<time>``).  Its path."""
    text = resolved_text(spec_file)
    path = os.path.join(run_dir.path, RESOLVED)
    if _holds(path, text):
        return path
    partial = path + PARTIAL
    try:
        run_dir.set_aside(RESOLVED + PARTIAL)  # left by a run that died while writing it, or not ours: kept
        with open(partial, "x", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        run_dir.set_aside(RESOLVED)
        os.replace(partial, path)
        fsync_path(run_dir.path)
    except OSError as exc:
        raise RunError(f"cannot write {path}: {exc.strerror or exc}; nothing was trained") from None
    return path


def _holds(path: str, text: str) -> bool:
    """Whether ``path`` is a regular file (not a link) holding exactly ``text``."""
    if os.path.islink(path) or not os.path.isfile(path):
        return False
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            return handle.read(len(text) + 1) == text
    except (OSError, UnicodeDecodeError):
        return False
