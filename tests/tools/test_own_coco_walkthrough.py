"""The README walk-through: one's own COCO json, without Python, through the real command lines."""
import hashlib

from _helpers import TINY_OVERRIDES, copy_as_own_coco, one_error_line, run_tool

from dicod_d2.teacher import write_random_teacher


def test_teacher_then_dicod_student_on_an_own_coco_json(tiny_fashiondet, tmp_path):
    own = copy_as_own_coco(tiny_fashiondet, tmp_path / "mydata")
    register = ["--register-coco", "mydata_train", str(own["train"]), str(own["images"]),
                "--register-coco", "mydata_val", str(own["val"]), str(own["images"])]
    names = ["dataloader.train.dataset.names=mydata_train", "dataloader.test.dataset.names=mydata_val"]

    teacher_dir = tmp_path / "teacher"
    run = run_tool("train_teacher.py", "--config-file",
                   "configs/teacher/fashiondet/resnet_tiny_56_general_ce_fl.py", *register,
                   *TINY_OVERRIDES, *names, "train.max_iter=2", f"train.output_dir={teacher_dir}")
    assert run.returncode == 0, run.stderr[-3000:]
    teacher = teacher_dir / "teacher.pth"
    sha256 = hashlib.sha256(teacher.read_bytes()).hexdigest()

    student_dir = tmp_path / "student"
    run = run_tool("lazyconfig_train_net.py", "--config-file", "configs/fashiondet/faster_rcnn/dicod.py",
                   *register, *TINY_OVERRIDES, *names, "train.max_iter=1",
                   f"model.distiller.teacher.path={teacher}", f"train.output_dir={student_dir}")
    assert run.returncode == 0, run.stderr[-3000:]
    log = (student_dir / "log.txt").read_text()
    assert f"Teacher {teacher} (sha256 {sha256})" in log and ", top-1 " in log
    assert f"images in COCO format from {own['train']}" in log
    assert (student_dir / "coco_instances_results.json").is_file()  # evaluated on mydata_val


def test_teacher_tool_user_error_is_one_line(tiny_fashiondet, tmp_path):
    """A teacher file of other classes, found after the setup: one error line, no traceback."""
    other = write_random_teacher(tmp_path / "other.pth", ["a", "b", "c"], input_size=56)
    run = run_tool("train_teacher.py", "--config-file",
                   "configs/teacher/fashiondet/resnet_tiny_56_general_ce_fl.py", "--eval-only",
                   *TINY_OVERRIDES, f"train.init_checkpoint={other}", f"train.output_dir={tmp_path}/o")
    assert one_error_line(run).startswith(f"error: teacher classes ({other}) do not match")
