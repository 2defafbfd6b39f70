"""The module paths of keras-graft 0.1 still import after the core was grouped into wings: the same
module objects under their old names, with a DeprecationWarning that names the new path."""

import importlib
import subprocess
import sys

from graft._moved import MOVED


def test_every_old_path_gives_the_module_at_its_new_path_and_warns():
    code = (
        "import importlib, warnings\n"
        "from graft._moved import MOVED\n"
        "for old, new in sorted(MOVED.items()):\n"
        "    with warnings.catch_warnings(record=True) as caught:\n"
        "        warnings.simplefilter('always')\n"
        "        module = importlib.import_module(old)\n"
        "    assert module is importlib.import_module(new), (old, new)\n"
        "    assert module.__spec__.name == new, (old, module.__spec__.name)\n"
        "    messages = [str(w.message) for w in caught if w.category is DeprecationWarning]\n"
        "    assert any(new in message for message in messages), (old, messages)\n"
        "print(len(MOVED))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == len(MOVED) > 70


def test_every_new_path_exists():
    for new in MOVED.values():
        importlib.import_module(new)


def test_what_users_imported_from_0_1_still_imports():
    code = (
        "import warnings; warnings.simplefilter('ignore')\n"
        "from graft.stages import run_spec\n"
        "from graft.observer import RunObserver\n"
        "from graft.report import StageReport\n"
        "from graft.registry import Registry\n"
        "from graft.specfile import parse_spec\n"
        "from graft.spec import Spec, Stage, HeadSpec\n"
        "from graft.data import Dataset, Stream\n"
        "from graft.planning import plan_spec, StagePlan\n"
        "import graft, graft.runs.stages, graft.records.report\n"
        "assert run_spec is graft.runs.stages.run_spec and StageReport is graft.records.report.StageReport\n"
        "assert Dataset is graft.Dataset and Stream is graft.Stream\n"
        "import sys; assert 'tensorflow' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
