"""Bad input to tools/lazyconfig_train_net.py ends with one clear message and writes nothing."""
import pytest
from _helpers import REPO, TINY_OVERRIDES

from dicod_d2.cli import run_cli
from dicod_d2.engine.train_loop import main

CONFIG = str(REPO / "configs/fashiondet/faster_rcnn/baseline.py")


def _cli(capsys, *argv):
    rc = run_cli(main, "test", list(argv))
    return rc, capsys.readouterr().err


def test_missing_config_file(capsys):
    rc, err = _cli(capsys, "--config-file", "configs/fashiondet/faster_rcnn/baseline_typo.py")
    assert rc == 1
    assert "config file 'configs/fashiondet/faster_rcnn/baseline_typo.py' does not exist" in err
    assert "configs/fashiondet/faster_rcnn/baseline.py" in err  # the suggestion


def test_bad_override_key(capsys, tmp_path):
    rc, err = _cli(capsys, "--config-file", CONFIG, "train.max_itr=3", f"train.output_dir={tmp_path}/o")
    assert rc == 1
    assert "no key 'train.max_itr'" in err and "train.max_iter" in err
    assert not (tmp_path / "o").exists()


def test_missing_dataset_folder(capsys, tmp_path):
    rc, err = _cli(capsys, "--config-file", CONFIG, *TINY_OVERRIDES,
                   "dataloader.train.dataset.names=fashiondet_quick_train",
                   "train.max_iter=1", f"train.output_dir={tmp_path}/o")
    assert rc == 1
    assert "instances_train.json" in err and "make_fashiondet.py --preset quick" in err
    assert not list((tmp_path / "o").glob("*.pth"))


def test_corrupt_checkpoint(capsys, tmp_path, tiny_fashiondet):
    bad = tmp_path / "model.pth"
    bad.write_bytes(b"PK\x03\x04 not really a checkpoint")
    rc, err = _cli(capsys, "--config-file", CONFIG, "--eval-only", *TINY_OVERRIDES,
                   f"train.init_checkpoint={bad}", f"train.output_dir={tmp_path}/o")
    assert rc == 1
    assert f"checkpoint '{bad}' is corrupt or truncated" in err


def test_missing_checkpoint(capsys, tmp_path, tiny_fashiondet):
    rc, err = _cli(capsys, "--config-file", CONFIG, "--eval-only", *TINY_OVERRIDES,
                   f"train.init_checkpoint={tmp_path}/nope.pth", f"train.output_dir={tmp_path}/o")
    assert rc == 1
    assert "nope.pth' does not exist" in err


@pytest.mark.parametrize("kind", ["under_a_file", "read_only_fs"])
def test_unwritable_output_folder(capsys, tmp_path, kind):
    if kind == "under_a_file":
        blocker = tmp_path / "file"
        blocker.write_text("x")
        out = blocker / "run"
    else:
        out = "/proc/dicod-d2-run"
    rc, err = _cli(capsys, "--config-file", CONFIG, *TINY_OVERRIDES, f"train.output_dir={out}")
    assert rc == 1
    assert f"output folder '{out}'" in err
