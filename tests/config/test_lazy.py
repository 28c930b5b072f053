"""Strict overrides: unknown keys and values of the wrong type fail with a ConfigError."""
import pytest
from _helpers import REPO

from dicod_d2.config.lazy import load_config
from dicod_d2.errors import ConfigError

CONFIG = REPO / "configs/fashiondet/faster_rcnn/dicod.py"


@pytest.mark.parametrize("override, message", [
    ("train.max_iter=abc", "'train.max_iter' is an int in the config"),
    ("train.max_iter=1.5", "'train.max_iter' is an int in the config"),
    ("train.amp.enabled=1", "'train.amp.enabled' is a bool"),
    ("optimizer.lr=fast", "'optimizer.lr' is a number"),
    ("model.distiller.loc_layers=stem", "'model.distiller.loc_layers' is a list"),
    ("train.max_itr=3", "no key 'train.max_itr'. Did you mean train.max_iter"),
    ("train.max_iter=[1,", "cannot parse the overrides"),
    ("--eval-only", "option '--eval-only' comes after the key=value overrides"),
    ("train.max_iter", "is not of the form key=value"),
])
def test_bad_overrides(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(CONFIG, [override])


def test_accepted_overrides():
    cfg = load_config(CONFIG, ["optimizer.lr=1", "train.max_iter=7", "model.distiller=null",
                               "train.init_checkpoint=/x.pth", "+train.extra=1"])
    assert cfg.optimizer.lr == 1 and cfg.train.max_iter == 7 and cfg.model.distiller is None
    assert cfg.train.extra == 1
