"""Loading LazyConfig files with clear errors and strict command-line overrides."""
from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Sequence

from detectron2.config import LazyConfig
from hydra.errors import OverrideParseException
from omegaconf import DictConfig, ListConfig, OmegaConf

from ..errors import ConfigError

#: configs/ of the source tree, shipped inside the installed package as dicod_d2/configs
CONFIGS_ROOT = Path(__file__).resolve().parent.parent / "configs"


def resolve_config_path(path: str | os.PathLike) -> Path:
    """Return an existing config file: ``path`` itself, or ``path`` relative to the packaged configs.

    Raises:
        FileNotFoundError: naming the path and listing the closest packaged configs.
    """
    p = Path(path)
    if p.is_file():
        return p
    rel = str(path).removeprefix("configs/")
    packaged = CONFIGS_ROOT / rel
    if packaged.is_file():
        return packaged
    known = sorted(str(q.relative_to(CONFIGS_ROOT)) for q in CONFIGS_ROOT.rglob("*.py")
                   if "common" not in q.parts and not q.name.startswith("_"))
    close = difflib.get_close_matches(rel, known, n=5, cutoff=0.3)
    hint = f" Did you mean: {', '.join('configs/' + c for c in close)}?" if close else ""
    raise FileNotFoundError(f"config file '{path}' does not exist.{hint}")


def _all_keys(cfg, prefix: str = "") -> list[str]:
    keys = []
    if isinstance(cfg, DictConfig):
        for k in cfg.keys():
            full = f"{prefix}{k}"
            keys.append(full)
            keys.extend(_all_keys(cfg._get_node(k), full + "."))
    return keys


def apply_overrides(cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """Apply ``key=value`` overrides strictly, before anything is built from the config.

    A key that does not exist in the config is an error (prefix it with ``+``, as in
    ``+model.backbone.norm=BN``, to add a key the config does not set), and so is a value whose
    type differs from the config's (``train.max_iter=abc``; an int is accepted for a float).

    Raises:
        ConfigError: naming the override and what to write instead.
    """
    checked, previous = [], {}
    for item in overrides:
        if item.startswith("-"):
            raise ConfigError(
                f"option '{item}' comes after the key=value overrides: write the options "
                f"(--resume, --eval-only, --num-gpus N, ...) before the first key=value"
            )
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key=value")
        key, value = item.split("=", 1)
        if key.startswith("+"):
            checked.append(f"{key[1:]}={value}")
            continue
        old = OmegaConf.select(cfg, key, default=_MISSING, throw_on_resolution_failure=False)
        if old is _MISSING:
            close = difflib.get_close_matches(key, _all_keys(cfg), n=3, cutoff=0.6)
            hint = f" Did you mean {' or '.join(close)}?" if close else ""
            raise ConfigError(
                f"override '{item}': the config has no key '{key}'.{hint} "
                f"(Write '+{key}=...' to add a key that the config does not set.)"
            )
        checked.append(item)
        previous[key] = (item, old)
    try:
        LazyConfig.apply_overrides(cfg, checked)
    except OverrideParseException as e:
        raise ConfigError(f"cannot parse the overrides {checked}: {e}") from e
    for key, (item, old) in previous.items():
        new = OmegaConf.select(cfg, key, throw_on_resolution_failure=False)
        expected = _type_mismatch(old, new)
        if expected:
            raise ConfigError(
                f"override '{item}': '{key}' is {expected} in the config ({old!r}), got "
                f"{new!r} ({type(new).__name__}). Write a value of that type."
            )
    return cfg


def _type_mismatch(old, new) -> str | None:
    """What ``new`` should have been (e.g. "an int") when its type does not fit ``old``'s, else None.

    None on either side, config nodes (a whole sub-config replaced) and strings replaced by
    anything are accepted; an int may replace a float."""
    if old is None or new is None or isinstance(old, (DictConfig, str)):
        return None
    if isinstance(old, bool):
        return None if isinstance(new, bool) else "a bool (True/False)"
    if isinstance(old, int):
        return None if isinstance(new, int) and not isinstance(new, bool) else "an int"
    if isinstance(old, float):
        return None if isinstance(new, (int, float)) and not isinstance(new, bool) else "a number"
    if isinstance(old, (ListConfig, list, tuple)):
        return None if isinstance(new, (ListConfig, list, tuple)) else "a list ([a, b, ...])"
    return None


_MISSING = object()


def load_config(path: str | os.PathLike, overrides: Sequence[str] = ()) -> DictConfig:
    """Load a LazyConfig file (see :func:`resolve_config_path`) and apply strict overrides."""
    cfg = LazyConfig.load(str(resolve_config_path(path)))
    return apply_overrides(cfg, list(overrides))


def drop_distiller(cfg: DictConfig) -> str | None:
    """Set ``cfg.model.distiller`` to None: a student that evaluates or predicts needs neither its
    distiller nor its teacher (which only add training losses), so no teacher file is read.

    Returns the teacher file it named ("-" for the control's teacher-free distiller), or None when
    the config has no distiller.
    """
    distiller = OmegaConf.select(cfg, "model.distiller", default=None)
    if distiller is None:
        return None
    teacher = distiller.get("teacher", None)
    cfg.model.distiller = None
    return "-" if teacher is None else str(teacher.get("path", "-"))
