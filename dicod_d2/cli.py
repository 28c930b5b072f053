"""Shared command-line entry for the training scripts: parse, launch, report errors clearly."""
from __future__ import annotations

import contextlib
import os
import sys
from datetime import timedelta
from typing import Callable

from .config.lazy import load_config, resolve_config_path
from .data.coco_json import register_coco_json  # importing dicod_d2.data registers FashionDet
from .engine.defaults import default_argument_parser
from .engine.interrupt import TrainingInterrupted
from .engine.launch import check_topology, launch
from .errors import USER_ERRORS
from .utils.output_lock import OutputFolderLock


def report_user_errors(fn: Callable[[], object]) -> int:
    """Run ``fn()``; return 0, or 1 after printing one ``error:`` line for a bad-input error
    (``DICOD_DEBUG=1`` re-raises it with its traceback)."""
    try:
        fn()
    except USER_ERRORS as e:
        if os.environ.get("DICOD_DEBUG"):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def register_datasets_and_run(main: Callable, args) -> object:
    """Register the ``--register-coco`` datasets in this process, then return ``main(args)``.

    Runs in every launched process (a spawned process starts with detectron2's catalogs empty;
    importing this module registers the built-in datasets)."""
    for name, json_file, image_root in args.register_coco:
        register_coco_json(name, json_file, image_root)
    return main(args)


def run_cli(main: Callable, description: str, argv: list[str] | None = None) -> int:
    """Parse detectron2-style arguments and run ``main(args)`` in every process of the launch,
    after registering the datasets of ``--register-coco``; machine 0 holds the config's
    ``train.output_dir`` meanwhile (:class:`~dicod_d2.utils.output_lock.OutputFolderLock`).

    Returns 0, 1 after a bad-input error, or ``128 + signum`` after a clean stop on SIGTERM / SIGINT
    (its "resume with --resume" line is logged by the training)."""
    parser = default_argument_parser(description)
    args = parser.parse_args(argv)

    def run() -> None:
        args.config_file = str(resolve_config_path(args.config_file))
        for name, json_file, image_root in args.register_coco:  # bad paths fail before the launch
            register_coco_json(name, json_file, image_root)
        check_topology(args.num_gpus, args.num_machines, args.machine_rank, args.dist_url)
        # machine 0's launcher holds train.output_dir (its processes write it) for the whole run
        output_dir = load_config(args.config_file, args.opts).train.output_dir
        with OutputFolderLock(output_dir) if args.machine_rank == 0 else contextlib.nullcontext():
            launch(
                register_datasets_and_run,
                args.num_gpus,
                num_machines=args.num_machines,
                machine_rank=args.machine_rank,
                dist_url=args.dist_url,
                args=(main, args),
                backend=args.dist_backend,
                rendezvous_timeout=timedelta(seconds=args.rendezvous_timeout),
            )

    try:
        return report_user_errors(run)
    except TrainingInterrupted as e:
        return e.exit_code
