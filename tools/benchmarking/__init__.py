"""What distillation costs: the sections of ``tools/benchmark.py`` (application code, not the library).

* :mod:`.crop` — the project's crops against :func:`.reference.reference_crop_replicate` (the
  authors' approach: the image replicated once per box, then ``grid_sample``), measured in the
  same run, plus the crop-level levers (one ``roi_align`` call vs one per image, teacher chunk
  size, teacher weight gradients, channels-last / autocast).
* :mod:`.step` — seconds per training iteration of baseline / +KD_cls / +loc+KD_loc / full DICOD
  for each student of :mod:`.students`, the variants alternating over the same batches in one
  process, with the teacher's share of the time (:class:`.step.TeacherTimer`) and the step-level
  levers.
* :mod:`.inference` — inference time and checkpoint size of a DICOD-trained student vs the
  baseline.
* :mod:`.profile` — where the time of a baseline and a DICOD step goes (``torch.profiler``: the
  operators by own time, host-device synchronisations, copies and kernel launches per step).
* :mod:`.report` — the markdown tables of a result.

Each section returns JSON-ready dicts; times in seconds, memory in bytes (see
:func:`.timing.memory_method` for what the ``peak_bytes`` numbers are on each device).
"""
