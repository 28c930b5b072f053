"""The frozen classification teacher: classifier families, teacher files, and the frozen wrapper."""

from .classifiers import (
    CLASSIFIERS,
    FEATURE_LAYERS,
    IMAGENET_PIXEL_MEAN,
    IMAGENET_PIXEL_STD,
    SHIPPED_WEIGHTS,
    TeacherClassifier,
    WeightsMismatchError,
    build_classifier,
    load_init_weights,
)
from .frozen import FrozenTeacher, build_frozen_teacher
from .teacher_file import (
    TeacherFileError,
    TeacherMeta,
    file_sha256,
    is_teacher_file,
    load_teacher_file,
    read_teacher_file,
    save_teacher_file,
    write_random_teacher,
)

__all__ = [
    "CLASSIFIERS",
    "FEATURE_LAYERS",
    "IMAGENET_PIXEL_MEAN",
    "IMAGENET_PIXEL_STD",
    "SHIPPED_WEIGHTS",
    "FrozenTeacher",
    "TeacherClassifier",
    "TeacherFileError",
    "TeacherMeta",
    "WeightsMismatchError",
    "build_classifier",
    "build_frozen_teacher",
    "file_sha256",
    "is_teacher_file",
    "load_init_weights",
    "load_teacher_file",
    "read_teacher_file",
    "save_teacher_file",
    "write_random_teacher",
]
