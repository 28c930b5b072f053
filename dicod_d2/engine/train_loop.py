"""The LazyConfig training and evaluation loop behind ``tools/lazyconfig_train_net.py``.

It follows detectron2's ``tools/lazyconfig_train_net.py`` with: the CPU/GPU launcher of
:mod:`dicod_d2.engine.launch`, an atomic checkpointer holding the optimizer, scheduler and
iteration, strict config overrides and clear errors, and for long or preempted runs: a data stream that a
resumed run continues with the same augmentations and random draws, so that it repeats the
uninterrupted run exactly (:mod:`dicod_d2.engine.exact_resume`), a clean stop on SIGTERM / SIGINT
(:mod:`dicod_d2.engine.interrupt`) and rank 0's BatchNorm statistics on every process
(:mod:`dicod_d2.engine.buffers`). The loaders' mappers skip unreadable images with a warning
(:class:`dicod_d2.data.dataset_mapper.SkipUnreadableImages`): training counts them in the metric
``data/unreadable_images``, evaluation logs how many it skipped. The config provides ``model``,
``dataloader.{train,test,evaluator}``, ``optimizer``, ``lr_multiplier`` and ``train`` (see
``configs/common/train.py``); ``train.extra_hooks`` (optional) lists more detectron2 hooks,
registered after the ``EvalHook``.
"""
from __future__ import annotations

import logging

from detectron2.config import instantiate
from detectron2.data import DatasetFromList, build_detection_train_loader
from detectron2.engine import AMPTrainer, SimpleTrainer, default_writers, hooks
from detectron2.evaluation import inference_on_dataset, print_csv_format
from detectron2.utils import comm
from detectron2.utils.events import get_event_storage
from detectron2.utils.registry import locate
from omegaconf import OmegaConf

from ..config.lazy import drop_distiller, load_config
from ..data.dataset_mapper import SkipUnreadableImages, drop_unreadable
from ..data.datasets import thing_classes
from ..data.samplers import ResumableTrainingSampler
from ..data.seeded_map import SeededMapDataset
from ..errors import CheckpointError, ConfigError
from ..teacher import is_teacher_file
from ..utils.rng import rngs_kept
from .buffers import BroadcastBuffers
from .checkpoint import AtomicCheckpointer, finished_iteration
from .defaults import config_dataset_names, create_ddp_model, setup
from .exact_resume import KeepMetricWindows, SeedEachIteration
from .interrupt import StopOnSignal

logger = logging.getLogger("dicod_d2")


def instantiate_mapper(mapper_cfg):
    """The mapper of a loader config wrapped in :class:`SkipUnreadableImages`; None stays None."""
    return None if mapper_cfg is None else SkipUnreadableImages(instantiate(mapper_cfg))


def instantiate_loader(loader_cfg, **given):
    """``instantiate(loader_cfg)`` with the arguments ``given`` instead of the config's, and its
    ``mapper`` (if any) wrapped in :class:`SkipUnreadableImages`."""
    kwargs = {**loader_cfg, **given}
    kwargs["mapper"] = instantiate_mapper(kwargs.get("mapper"))
    return instantiate(kwargs)


class ReadableBatches:
    """The batches of ``loader`` without the images its mapper skipped as unreadable; ``skipped``
    counts those so far. Its length is the loader's."""

    def __init__(self, loader):
        self._loader = loader
        self.skipped = 0

    def __len__(self) -> int:
        return len(self._loader)

    def __iter__(self):
        for batch in self._loader:
            batch, skipped = drop_unreadable(batch)
            self.skipped += skipped
            if batch:
                yield batch


def do_test(cfg, model):
    """Evaluate ``model`` on ``cfg.dataloader.test`` with ``cfg.dataloader.evaluator``."""
    if "evaluator" not in cfg.dataloader:
        return {}
    batches = ReadableBatches(instantiate_loader(cfg.dataloader.test))
    ret = inference_on_dataset(model, batches, instantiate(cfg.dataloader.evaluator))
    skipped = sum(comm.all_gather(batches.skipped))
    if comm.is_main_process():
        if skipped:
            logger.warning("%d unreadable images were skipped: their objects count as missed", skipped)
        print_csv_format(ret)
    return ret


def build_model(cfg):
    """Instantiate ``cfg.model`` on ``cfg.train.device``."""
    model = instantiate(cfg.model)
    model.to(cfg.train.device)
    return model


def _resumable_loader(loader_cfg, seed: int):
    """``(build, start_at)`` for ``loader_cfg`` (``cfg.dataloader.train``): ``build()`` makes the
    loader, ``start_at(iteration)`` makes its stream start at that iteration's batch.

    With detectron2's ``build_detection_train_loader`` and no sampler in the config, the dataset and a
    :class:`ResumableTrainingSampler` of the run's ``seed`` (the same on every process) are built
    now, and each item is mapped by a :class:`SeededMapDataset` with the seed of its position in
    the stream; other loaders come with ``start_at=None`` (a resumed run starts their stream afresh,
    with new augmentations).
    """
    target = loader_cfg.get("_target_")
    if isinstance(target, str):
        target = locate(target)
    if target is not build_detection_train_loader or loader_cfg.get("sampler") is not None:
        return (lambda: instantiate_loader(loader_cfg)), None
    dataset = instantiate(loader_cfg.dataset)
    if isinstance(dataset, list):  # as build_detection_train_loader does
        dataset = DatasetFromList(dataset, copy=False)
    batch_size = loader_cfg.total_batch_size // comm.get_world_size()
    grouped = loader_cfg.get("aspect_ratio_grouping", True)  # detectron2's default
    sampler = ResumableTrainingSampler(len(dataset), items_per_fetch=1 if grouped else batch_size,
                                       seed=seed)

    def start_at(iteration: int) -> None:
        sampler.start_item = iteration * batch_size

    def build():
        mapped = SeededMapDataset(dataset, instantiate_mapper(loader_cfg.get("mapper")))
        return instantiate({**loader_cfg, "dataset": mapped, "mapper": None, "sampler": sampler})

    return build, start_at


def _batches(build, start_at, start_iter):
    """Batches of the loader ``build()`` makes, from iteration ``start_iter()`` on, without the
    unreadable images (counted in ``data/unreadable_images``). A generator: the loader is built at
    the first step, once a resume has set the trainer's iteration. Building and reading the loader
    leave this process's RNGs as they were (the DataLoader draws its workers' seeds from torch's)."""
    with rngs_kept():
        if start_at is not None:
            start_at(start_iter())
        batches = ReadableBatches(build())
        iterator = iter(batches)
    while True:
        with rngs_kept():
            batch = next(iterator, None)
        if batch is None:
            return
        if batches.skipped:
            get_event_storage().put_scalar("data/unreadable_images", batches.skipped,
                                           smoothing_hint=False)
        yield batch


def report_divergence_with_losses(trainer) -> None:
    """Make ``trainer`` report a divergence found in the model's forward as detectron2 reports a
    non-finite loss: the iteration and the loss dict.

    Faster R-CNN's proposal generator raises ``FloatingPointError("Predicted boxes or scores contain
    Inf/NaN...")`` when its weights became infinite, before any loss is computed; RetinaNet and SSD
    get to a non-finite loss, which detectron2 reports with the iteration and the loss dict. Here
    the first kind is raised again with the iteration and the losses of the iteration before (the
    last ones logged).
    """
    run_step = trainer.run_step

    def step():
        try:
            run_step()
        except FloatingPointError as e:
            if "Loss became infinite or NaN" in str(e):
                raise
            histories = trainer.storage.histories()
            losses = {k: h.latest() for k, h in histories.items() if k == "total_loss" or k.startswith("loss")}
            raise FloatingPointError(
                f"Loss became infinite or NaN at iteration={trainer.iter}! (the model's predictions "
                f"did: {e})\nloss_dict of iteration {trainer.iter - 1} = {losses}"
            ) from e

    trainer.run_step = step


def do_train(args, cfg):
    """Train with detectron2's hooks: timer, LR schedule, checkpoints, evaluation, writers."""
    model = build_model(cfg)
    logger.info("Model:\n%s", model)
    cfg.optimizer.params.model = model
    optim = instantiate(cfg.optimizer)
    seed = comm.shared_random_seed()  # from train.seed: the same in a resumed run
    build_loader, start_at = _resumable_loader(cfg.dataloader.train, seed)
    batches = _batches(build_loader, start_at, lambda: trainer.iter)

    model = create_ddp_model(model, **cfg.train.ddp)
    trainer = (AMPTrainer if cfg.train.amp.enabled else SimpleTrainer)(model, batches, optim)
    report_divergence_with_losses(trainer)
    checkpointer = AtomicCheckpointer(model, cfg.train.output_dir, trainer=trainer)
    trainer.register_hooks(
        [
            SeedEachIteration(seed),
            KeepMetricWindows(),
            hooks.IterationTimer(),
            hooks.LRScheduler(scheduler=instantiate(cfg.lr_multiplier)),
            BroadcastBuffers() if comm.get_world_size() > 1 else None,
            hooks.PeriodicCheckpointer(checkpointer, **cfg.train.checkpointer)
            if comm.is_main_process()
            else None,
            hooks.EvalHook(cfg.train.eval_period, lambda: do_test(cfg, model)),
            # optional hooks of the config, run after the final evaluation (e.g. teacher export)
            *instantiate(cfg.train.get("extra_hooks", [])),
            # before the writer: an interrupted iteration's metrics are written once, by after_train
            StopOnSignal(checkpointer, cfg.train.output_dir),
            hooks.PeriodicWriter(
                default_writers(cfg.train.output_dir, cfg.train.max_iter),
                period=cfg.train.log_period,
            )
            if comm.is_main_process()
            else None,
        ]
    )
    if comm.is_main_process():
        checkpointer.remove_stale_temporaries()
    if args.resume and checkpointer.has_checkpoint():
        checkpointer.resume_or_load(cfg.train.init_checkpoint, resume=True)
        # the checkpoint holds the iteration that just finished: start at the next one
        start_iter = trainer.iter + 1
    else:
        load_init_checkpoint(cfg, checkpointer)
        start_iter = 0
    trainer.train(start_iter, cfg.train.max_iter)
    return trainer


def load_init_checkpoint(cfg, checkpointer: AtomicCheckpointer) -> None:
    """Load ``cfg.train.init_checkpoint`` (if set) into the checkpointer's model: a checkpoint of
    another model is refused unless ``train.init_checkpoint_partial=True`` (e.g. backbone weights),
    which loads the weights that fit and logs the others."""
    partial = bool(cfg.train.get("init_checkpoint_partial", False))
    if partial:
        logger.info("train.init_checkpoint_partial=True: loading the weights of %s that fit the model",
                    cfg.train.init_checkpoint or "-")
    checkpointer.load_fitting(
        cfg.train.init_checkpoint, model_name="the model of this config", partial=partial,
        fix="Give a checkpoint of this config's model (its model_final.pth), or set "
        "train.init_checkpoint_partial=True to load only the weights that fit (e.g. a backbone).",
    )


def check_iterations(cfg, resume: bool) -> None:
    """Raise :class:`ConfigError` when ``train.max_iter`` is not positive, or when ``resume`` would
    continue a run whose checkpoint is already past ``train.max_iter``."""
    max_iter = cfg.train.max_iter
    if max_iter <= 0:
        raise ConfigError(f"train.max_iter={max_iter}: give a positive number of iterations to train "
                          "(--eval-only evaluates a checkpoint without training)")
    if not resume:
        return
    finished = finished_iteration(cfg.train.output_dir)
    if finished is not None and max_iter <= finished:
        raise ConfigError(
            f"--resume: the checkpoint of '{cfg.train.output_dir}' finished iteration {finished + 1}, "
            f"past train.max_iter={max_iter}: give train.max_iter above {finished + 1} to train "
            "further, or --eval-only with its checkpoint to evaluate it"
        )


def check_eval_only_checkpoint(cfg, what: str) -> None:
    """Raise :class:`ConfigError` when ``cfg.train.init_checkpoint``, the weights an
    ``--eval-only`` run evaluates, is not set (``what`` says what to give)."""
    if not cfg.train.init_checkpoint:
        raise ConfigError(
            f"--eval-only needs train.init_checkpoint={what}; without it the randomly initialised "
            "model would be evaluated"
        )


def check_student_checkpoint(path: str) -> None:
    """Raise :class:`CheckpointError` when ``path`` is a teacher file, not a detector checkpoint."""
    if path and is_teacher_file(path):
        raise CheckpointError(
            f"train.init_checkpoint '{path}' is a teacher file, not a detector checkpoint: give the "
            "teacher as model.distiller.teacher.path and a detector checkpoint (model_final.pth) "
            "or backbone weights as train.init_checkpoint"
        )


#: where a detector config sets its number of classes (Faster R-CNN; RetinaNet and SSD)
NUM_CLASSES_KEYS = ("model.roi_heads.num_classes", "model.num_classes")


def check_num_classes(cfg) -> None:
    """Raise :class:`ConfigError` unless the detector has as many classes as its datasets."""
    key = next((k for k in NUM_CLASSES_KEYS if OmegaConf.select(cfg, k, default=None) is not None), None)
    if key is None:
        return
    num_classes = OmegaConf.select(cfg, key)
    for name in config_dataset_names(cfg):
        classes = thing_classes(name)
        if len(classes) != num_classes:
            raise ConfigError(
                f"{key}={num_classes} but dataset '{name}' has {len(classes)} classes "
                f"({', '.join(classes[:5])}{', ...' if len(classes) > 5 else ''}): set {key}={len(classes)}"
            )


def main(args):
    """Entry point run in every process by the launcher."""
    cfg = load_config(args.config_file, args.opts)
    if args.eval_only:
        check_eval_only_checkpoint(cfg, "<output_dir>/model_final.pth")
        drop_distiller(cfg)  # evaluation needs neither the distiller nor its teacher file
    else:
        check_iterations(cfg, args.resume)
    check_student_checkpoint(cfg.train.init_checkpoint)
    check_num_classes(cfg)
    setup(cfg, args)
    if args.eval_only:
        model = build_model(cfg)
        AtomicCheckpointer(model).load_fitting(
            cfg.train.init_checkpoint, model_name=f"the model of '{args.config_file}'",
            fix="Evaluate a checkpoint with the config it was trained with.")
        return do_test(cfg, create_ddp_model(model))
    return do_train(args, cfg)
