#!/usr/bin/env python
"""Generate the FashionDet detection dataset (train, val and test splits) for a preset.

    python tools/make_fashiondet.py --preset tiny            # -> <root>/fashiondet_tiny
    python tools/make_fashiondet.py --preset demo --root /data/datasets
    python tools/make_fashiondet.py --preset tiny --verify   # and check its bytes' sha256

The root defaults to $DICOD_DATASETS, else $DETECTRON2_DATASETS, else ./datasets. A split that
already exists with the same settings is left as it is.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from dicod_d2.cli import report_user_errors
from dicod_d2.data.datasets import get_data_root
from dicod_d2.data.fashiondet import (
    PRESET_DIRNAMES,
    PRESETS,
    SPLIT_SHA256,
    generate_split,
    preset_specs,
    split_is_current,
    verify_fashiondet,
)
from dicod_d2.errors import ConfigError


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    p.add_argument("--root", type=Path, default=None, help="datasets root (default: see above)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-images", type=int, default=None, help="override the preset's count")
    p.add_argument("--val-images", type=int, default=None,
                   help="override the preset's count of the val and test splits")
    p.add_argument("--image-size", type=int, default=None, help="image side in pixels (256)")
    p.add_argument("--verify", action="store_true",
                   help="check the splits' sha256 against the reference ones (seed 0, the preset's "
                   f"settings; presets {', '.join(sorted(SPLIT_SHA256))})")
    return p.parse_args(argv)


def main(argv=None) -> dict[str, Path]:
    args = parse_args(argv)
    if args.verify and (args.seed or args.train_images or args.val_images or args.image_size):
        raise ConfigError("--verify checks the preset's own splits: drop --seed, --train-images, "
                          "--val-images and --image-size")
    overrides = {"image_size": args.image_size} if args.image_size else {}
    specs = preset_specs(args.preset, args.seed, args.train_images, args.val_images, **overrides)
    out_dir = (args.root if args.root is not None else get_data_root()) / PRESET_DIRNAMES[
        args.preset
    ]
    written = {}
    for split, spec in specs.items():
        up_to_date = split_is_current(out_dir, split, spec)
        start = time.perf_counter()
        written[split] = json_file = generate_split(out_dir, split, spec)
        seconds = time.perf_counter() - start
        n_anns = len(json.loads(json_file.read_text(encoding="utf-8"))["annotations"])
        action = "up to date" if up_to_date else f"generated in {seconds:.1f} s"
        print(
            f"{split}: {spec.num_images} images ({spec.image_size} px), {n_anns} objects, "
            f"{action}: {json_file}, {out_dir / split}/"
            + ("" if up_to_date else f" ({1000 * seconds / spec.num_images:.1f} ms/image)")
        )
    if args.verify:
        for split, digest in verify_fashiondet(out_dir, args.preset).items():
            print(f"{split}: sha256 {digest} (the reference)")
    return written


if __name__ == "__main__":
    sys.exit(report_user_errors(main))  # a bad value (--image-size 16): one error line
