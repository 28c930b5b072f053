"""A process that sets up several trainings' logging keeps one console and one file handler."""
import logging

from _pytest.logging import LogCaptureHandler
from detectron2.utils.logger import setup_logger

from dicod_d2.utils.logger import RUN_LOGGERS, setup_run_logging


def _setup(out):
    for name in RUN_LOGGERS:
        setup_logger(str(out), name=name)
    logging.getLogger("detectron2").info("logged during the setup")  # as default_setup does


def test_two_setups_leave_the_handlers_of_the_last_run(tmp_path, capsys):
    logger = logging.getLogger("dicod_d2")
    propagate = logger.propagate
    # handlers that earlier tests of this process left (e.g. a tool's own setup_logger call) are not the runs'
    earlier = {name: set(logging.getLogger(name).handlers) for name in RUN_LOGGERS}
    try:
        for run in ("a", "b", "a", "c"):  # "a" twice: an output folder seen before
            capsys.readouterr()
            setup_run_logging(lambda run=run: _setup(tmp_path / run))
            assert capsys.readouterr().out.count("logged during the setup") == 1, run
            for name in RUN_LOGGERS:
                ours = [h for h in logging.getLogger(name).handlers
                        if not isinstance(h, LogCaptureHandler) and h not in earlier[name]]
                assert len(ours) == 2, (name, ours)  # pytest's capture handlers are not the run's
        capsys.readouterr()
        logger.info("one line, once")
        assert capsys.readouterr().out.count("one line, once") == 1
        for handler in logger.handlers:
            if handler not in earlier["dicod_d2"]:
                handler.flush()
        assert (tmp_path / "c/log.txt").read_text().count("one line, once") == 1
        assert "one line, once" not in (tmp_path / "a/log.txt").read_text()
    finally:  # the setup stops propagation, which pytest's caplog relies on
        logger.propagate = propagate
