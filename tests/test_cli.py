"""dicod_d2/cli.py: user errors end in one line, bugs keep their traceback, datasets in every process."""
import pytest
from _helpers import copy_as_own_coco

from dicod_d2.cli import register_datasets_and_run, report_user_errors
from dicod_d2.engine.defaults import default_argument_parser
from dicod_d2.engine.launch import launch
from dicod_d2.errors import ConfigError, DataError


def _raise(exc):
    def fn():
        raise exc

    return fn


@pytest.mark.parametrize("exc", [ConfigError("bad value: use 3"), FileNotFoundError("no file 'x'"),
                                 PermissionError("cannot write 'y'")])
def test_user_errors_are_one_line(capsys, exc, monkeypatch):
    monkeypatch.delenv("DICOD_DEBUG", raising=False)
    assert report_user_errors(_raise(exc)) == 1
    assert capsys.readouterr().err == f"error: {exc}\n"


@pytest.mark.parametrize("exc", [RuntimeError("CUDA out of memory"), KeyError("bug"), ValueError("bug"),
                                 OSError("disk")])
def test_bugs_keep_their_traceback(exc):
    with pytest.raises(type(exc)):
        report_user_errors(_raise(exc))


def test_debug_shows_the_traceback_of_a_user_error(monkeypatch):
    monkeypatch.setenv("DICOD_DEBUG", "1")
    with pytest.raises(DataError):
        report_user_errors(_raise(DataError("bad json")))


def _classes_of_own_dataset(args):
    """Run by every launched process: the dataset of --register-coco is there."""
    from dicod_d2.data.datasets import thing_classes

    assert len(thing_classes(args.opts[0])) == 10


def test_register_coco_in_every_spawned_process(tiny_fashiondet, tmp_path):
    own = copy_as_own_coco(tiny_fashiondet, tmp_path / "own")
    args = default_argument_parser().parse_args(
        ["--register-coco", "mine_val", str(own["val"]), str(own["images"]), "mine_val"])
    # two gloo processes: a spawned process starts with detectron2's catalogs empty
    launch(register_datasets_and_run, 2, args=(_classes_of_own_dataset, args), backend="gloo")
