"""Loading LazyConfig files with clear errors and strict command-line overrides."""
from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Sequence

from detectron2.config import LazyConfig
from omegaconf import DictConfig, OmegaConf

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
    """Apply ``key=value`` overrides; a key that does not exist in the config is an error.

    Prefix a key with ``+`` (``+model.backbone.norm=BN``) to add a key that the config does not set.
    """
    checked = []
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override '{item}' is not of the form key=value")
        key, value = item.split("=", 1)
        if key.startswith("+"):
            checked.append(f"{key[1:]}={value}")
            continue
        if OmegaConf.select(cfg, key, default=_MISSING) is _MISSING:
            close = difflib.get_close_matches(key, _all_keys(cfg), n=3, cutoff=0.6)
            hint = f" Did you mean {' or '.join(close)}?" if close else ""
            raise KeyError(
                f"override '{item}': the config has no key '{key}'.{hint} "
                f"(Write '+{key}=...' to add a key that the config does not set.)"
            )
        checked.append(item)
    return LazyConfig.apply_overrides(cfg, checked)


_MISSING = object()


def load_config(path: str | os.PathLike, overrides: Sequence[str] = ()) -> DictConfig:
    """Load a LazyConfig file (see :func:`resolve_config_path`) and apply strict overrides."""
    cfg = LazyConfig.load(str(resolve_config_path(path)))
    return apply_overrides(cfg, list(overrides))
