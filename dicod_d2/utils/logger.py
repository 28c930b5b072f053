"""One set of log handlers per process, however many trainings the process runs."""
from __future__ import annotations

import logging
from collections.abc import Callable

from detectron2.utils.logger import setup_logger

#: the loggers that a training's setup gives a console and a log-file handler
RUN_LOGGERS = ("fvcore", "detectron2", "dicod_d2")
_MARK = "_dicod_d2_run_handler"


def setup_run_logging(setup: Callable[[], None]) -> None:
    """Run ``setup`` (detectron2's ``default_setup`` and ``setup_logger`` calls for one training's
    output folder) so that :data:`RUN_LOGGERS` end with the handlers of this run only.

    detectron2's ``setup_logger`` adds a console and a file handler at each call with a new output
    folder; a process that trains several times (tests, sweeps) would print each line once per
    earlier training, and write it into the earlier runs' ``log.txt`` too. Here the handlers
    added by a previous call are removed before ``setup`` runs, so each logger has one
    console handler (rank 0) and one file handler (this run's log) after any number of calls.
    """
    for name in RUN_LOGGERS:  # a previous run's handlers go first: setup() logs already
        logger = logging.getLogger(name)
        for handler in [h for h in logger.handlers if getattr(h, _MARK, False)]:
            logger.removeHandler(handler)  # its file stream stays cached (and closed at exit) by detectron2
    setup_logger.cache_clear()  # re-add this run's handlers even for an output folder seen before
    before = {name: list(logging.getLogger(name).handlers) for name in RUN_LOGGERS}
    setup()
    for name in RUN_LOGGERS:
        for handler in logging.getLogger(name).handlers:
            if handler not in before[name]:
                setattr(handler, _MARK, True)
