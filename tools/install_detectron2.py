#!/usr/bin/env python
"""Install detectron2 0.6 into the running Python environment, without compiled ops.

detectron2's authors publish no wheel on PyPI. ``pb1-detectron2==0.6`` is an sdist whose Python
sources equal upstream detectron2 v0.6 but which ships no C++ sources, so it cannot be built as is.
This script:

1. keeps an importable detectron2 that has real compiled ops (``detectron2._C``) untouched;
2. otherwise downloads the sdist through PyPI's simple API (or takes ``--sdist PATH``), checks its
   pinned sha256, and unpacks it into a temporary folder;
3. patches it: no extension modules, a placeholder ``detectron2/_C.py`` whose ops raise a clear
   error, a hook in ``detectron2/__init__.py`` that applies :mod:`dicod_d2.compat` before any other
   detectron2 code runs, and the model-zoo configs declared as package data;
4. installs it with pip under the distribution name ``detectron2`` (version ``0.6+dicod.nocompiledops``).

Run again, it finishes in about a second when the same patched build is already installed.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

SDIST_NAME = "pb1-detectron2"
SDIST_VERSION = "0.6"
SDIST_FILENAME = f"{SDIST_NAME}-{SDIST_VERSION}.tar.gz"
SDIST_SHA256 = "5d2e9e51e523ec72f6a31cca04b0a515492e9514b773a3d134cedc0677170b29"
PLACEHOLDER_MARKER = "DICOD_D2_PLACEHOLDER = True"
COMPAT_HOOK_MARKER = "# dicod-d2: compatibility hook"

PLACEHOLDER_SOURCE = '''"""Placeholder for detectron2's compiled ops (written by dicod-d2's installer).

This detectron2 was installed without compiled ops. Everything that detectron2 runs through
torchvision (ROIAlign, NMS) works; deformable convolution, rotated boxes, ROIAlignRotated and the
fast COCOeval need the compiled extension and raise :class:`CompiledOpUnavailable`.
"""
DICOD_D2_PLACEHOLDER = True


class CompiledOpUnavailable(NotImplementedError):
    """A detectron2 op that needs the compiled extension ``detectron2._C`` was called."""


def get_compiler_version():
    return "none (detectron2 installed without compiled ops)"


def get_cuda_version():
    return "none (detectron2 installed without compiled ops)"


def has_cuda():
    return False


def _unavailable(name):
    return CompiledOpUnavailable(
        f"detectron2 op '{name}' needs detectron2's compiled ops (detectron2._C), but detectron2 "
        "was installed without compiled ops (dicod-d2's tools/install_detectron2.py). Use an op "
        "that runs through torchvision instead, or build detectron2 from its source with a C++/CUDA "
        "toolchain into this environment (the installer then leaves it untouched)."
    )


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    raise _unavailable(name)


def _register_torch_ops():
    """detectron2 calls ``torch.ops.detectron2.nms_rotated``: define it so that it raises clearly."""
    import torch

    lib = torch.library.Library("detectron2", "FRAGMENT")

    def nms_rotated(boxes, scores, iou_threshold):
        raise _unavailable("nms_rotated")

    try:
        lib.define("nms_rotated(Tensor boxes, Tensor scores, float iou_threshold) -> Tensor")
        lib.impl("nms_rotated", nms_rotated, "CompositeExplicitAutograd")
    except RuntimeError:  # already defined in this process
        pass
    return lib


_TORCH_LIBRARY = _register_torch_ops()
'''

COMPAT_HOOK_SOURCE = f'''
{COMPAT_HOOK_MARKER}: Pillow>=10 and numpy 2 aliases that detectron2 0.6 uses, applied
# before any detectron2 code runs (see dicod_d2/compat.py).
try:
    from dicod_d2.compat import apply_compat as _dicod_apply_compat
except ImportError:  # dicod-d2 uninstalled: detectron2 still imports where the stack allows
    pass
else:
    _dicod_apply_compat()
'''


# the installed version names the patch, so that a changed installer reinstalls detectron2
INSTALLED_VERSION = "0.6+dicod." + hashlib.sha256(
    (PLACEHOLDER_SOURCE + COMPAT_HOOK_SOURCE).encode()
).hexdigest()[:8]


def log(msg: str) -> None:
    print(f"[install_detectron2] {msg}", flush=True)


def probe_installed() -> dict:
    """Describe the detectron2 importable in this interpreter (in a subprocess, clean state)."""
    code = (
        "import json, importlib.metadata as m\n"
        "out = {'importable': False}\n"
        "try:\n"
        "    import detectron2, detectron2._C as c\n"
        "    out = {'importable': True, 'placeholder': getattr(c, 'DICOD_D2_PLACEHOLDER', False),\n"
        "           'path': detectron2.__file__}\n"
        "    try: out['version'] = m.version('detectron2')\n"
        "    except m.PackageNotFoundError: out['version'] = None\n"
        "except Exception as e:\n"
        "    out['error'] = repr(e)\n"
        "print(json.dumps(out))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tempfile.gettempdir()
    )
    try:
        return json.loads(res.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"importable": False, "error": res.stderr[-2000:]}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_sdist(dest: Path, index: str) -> Path:
    """Find the sdist through PyPI's JSON simple API (PEP 691) and download it."""
    url = f"{index.rstrip('/')}/{SDIST_NAME}/"
    req = urllib.request.Request(url, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        files = json.load(r)["files"]
    match = [f for f in files if f["filename"] == SDIST_FILENAME]
    if not match:
        raise SystemExit(f"{SDIST_FILENAME} is not listed at {url}; pass --sdist PATH instead.")
    out = dest / SDIST_FILENAME
    log(f"downloading {match[0]['url']}")
    with urllib.request.urlopen(match[0]["url"], timeout=300) as r, open(out, "wb") as f:
        f.write(r.read())
    return out


def patch_source(root: Path) -> None:
    """Apply the four patches described in the module docstring to an unpacked sdist."""
    setup_py = root / "setup.py"
    text = setup_py.read_text()
    replacements = {
        "ext_modules=get_extensions(),": "ext_modules=[],",
        'name="pb1-detectron2",': 'name="detectron2",',
        "version=get_version(),": f'version="{INSTALLED_VERSION}",',
        'package_data={"detectron2.model_zoo": get_model_zoo_configs()},': (
            'package_data={"detectron2.model_zoo": ["configs/**/*.yaml", "configs/**/*.py"]},'
        ),
    }
    for old, new in replacements.items():
        if old not in text:
            raise SystemExit(f"unexpected setup.py in the sdist: '{old}' not found")
        text = text.replace(old, new)
    # the extension build helper must not run at all
    text = re.sub(r'cmdclass=\{"build_ext": [^}]*\},', "", text)
    setup_py.write_text(text)
    (root / "detectron2" / "_C.py").write_text(PLACEHOLDER_SOURCE)
    init = root / "detectron2" / "__init__.py"
    init_text = init.read_text()
    head, sep, tail = init_text.partition("from .utils.env import setup_environment")
    if not sep:
        raise SystemExit("unexpected detectron2/__init__.py in the sdist")
    init.write_text(head + COMPAT_HOOK_SOURCE + "\n" + sep + tail)
    egg = root / "pb1_detectron2.egg-info"
    if egg.exists():
        for p in sorted(egg.iterdir()):
            p.unlink()
        egg.rmdir()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sdist", type=Path, help=f"a local {SDIST_FILENAME} (checked by sha256)")
    ap.add_argument(
        "--index",
        default=os.environ.get("DICOD_PYPI_SIMPLE", "https://pypi.org/simple"),
        help="PEP 691 simple index to download the sdist from",
    )
    ap.add_argument("--force", action="store_true", help="reinstall even if already installed")
    args = ap.parse_args()

    if importlib.util.find_spec("torch") is None:
        raise SystemExit("torch must be installed first (see requirements.txt)")
    state = probe_installed()
    if state.get("importable") and not state.get("placeholder"):
        log(f"detectron2 with compiled ops found at {state['path']}: left untouched")
        return 0
    if state.get("importable") and state.get("version") == INSTALLED_VERSION and not args.force:
        log(f"detectron2 {INSTALLED_VERSION} already installed: nothing to do")
        return 0

    with tempfile.TemporaryDirectory(prefix="dicod-d2-detectron2-") as tmp:
        tmp = Path(tmp)
        sdist = args.sdist or download_sdist(tmp, args.index)
        digest = sha256(sdist)
        if digest != SDIST_SHA256:
            raise SystemExit(
                f"{sdist}: sha256 {digest} does not match the pinned {SDIST_SHA256}; "
                "refusing to install it. Delete the file and run again to download a fresh copy."
            )
        log(f"{sdist.name}: sha256 verified")
        with tarfile.open(sdist) as tar:
            tar.extractall(tmp, filter="data")
        root = tmp / f"{SDIST_NAME}-{SDIST_VERSION}"
        patch_source(root)
        log("building and installing detectron2 without compiled ops")
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-build-isolation", "--no-deps",
             "--no-cache-dir", str(root)],
            check=True,
        )
    state = probe_installed()
    if not state.get("importable"):
        raise SystemExit(f"detectron2 installed but does not import: {state.get('error')}")
    log(f"detectron2 {state.get('version')} installed at {Path(state['path']).parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
