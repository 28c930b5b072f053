"""Shared command-line entry for the training scripts: parse, launch, report errors clearly."""
from __future__ import annotations

import logging
import os
import sys
from datetime import timedelta
from typing import Callable

from .config.lazy import resolve_config_path
from .engine.defaults import default_argument_parser
from .engine.interrupt import TrainingInterrupted
from .engine.launch import launch

#: errors that stand for bad input: reported as one message (set DICOD_DEBUG=1 for the traceback)
USER_ERRORS = (FileNotFoundError, PermissionError, KeyError, ValueError, RuntimeError, OSError)


def report_user_errors(fn: Callable[[], object]) -> int:
    """Run ``fn()``; return 0, or 1 after printing one ``error:`` line for a bad-input error
    (``DICOD_DEBUG=1`` re-raises it with its traceback)."""
    try:
        fn()
    except USER_ERRORS as e:
        if os.environ.get("DICOD_DEBUG"):
            raise
        logging.getLogger("dicod_d2").debug("error", exc_info=True)
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {msg}", file=sys.stderr)
        return 1
    return 0


def run_cli(main: Callable, description: str, argv: list[str] | None = None) -> int:
    """Parse detectron2-style arguments and run ``main(args)`` in every process of the launch.

    Returns 0, 1 after a bad-input error, or ``128 + signum`` after a clean stop on SIGTERM / SIGINT
    (its "resume with --resume" line is logged by the training)."""
    parser = default_argument_parser(description)
    args = parser.parse_args(argv)

    def run() -> None:
        args.config_file = str(resolve_config_path(args.config_file))
        import dicod_d2.data  # noqa: F401  registers the built-in datasets

        launch(
            main,
            args.num_gpus,
            num_machines=args.num_machines,
            machine_rank=args.machine_rank,
            dist_url=args.dist_url,
            args=(args,),
            backend=args.dist_backend,
            rendezvous_timeout=timedelta(seconds=args.rendezvous_timeout),
        )

    try:
        return report_user_errors(run)
    except TrainingInterrupted as e:
        return e.exit_code
