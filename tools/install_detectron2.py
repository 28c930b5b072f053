#!/usr/bin/env python
"""Install detectron2 0.6 into the running Python environment, without compiled ops.

detectron2's authors publish no wheel on PyPI. ``pb1-detectron2==0.6`` is an sdist whose Python
sources equal upstream detectron2 v0.6 but which ships no C++ sources, so it cannot be built as is.
This script:

1. keeps an importable detectron2 that has real compiled ops (``detectron2._C``) untouched;
2. otherwise downloads the sdist through PyPI's simple API (or takes ``--sdist PATH``), checks its
   pinned sha256, and unpacks it into a temporary folder;
3. applies the unified diffs of ``tools/detectron2_patches/`` in name order (one fix each, its
   reason on the first line); every hunk must match the sdist's sources exactly, else it stops;
4. installs the result with pip under the distribution name ``detectron2``, version
   ``0.6+dicod.<hash of the patches>``, then checks that each patched file was installed byte for
   byte and that detectron2 imports without importing anything of this project.

Run again, it finishes in about a second when the same patched build is already installed.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

SDIST_NAME = "pb1-detectron2"
SDIST_VERSION = "0.6"
SDIST_FILENAME = f"{SDIST_NAME}-{SDIST_VERSION}.tar.gz"
SDIST_SHA256 = "5d2e9e51e523ec72f6a31cca04b0a515492e9514b773a3d134cedc0677170b29"
PATCH_DIR = Path(__file__).resolve().parent / "detectron2_patches"


class PatchError(SystemExit):
    """A patch of :data:`PATCH_DIR` does not apply, or was not installed (exits with the message)."""

    def __init__(self, message: str):
        super().__init__(f"error: {message}")


def patch_files() -> list[Path]:
    """The patch files, in the order they are applied (by name)."""
    return sorted(PATCH_DIR.glob("*.patch"))


def installed_version() -> str:
    """``0.6+dicod.<hash of the patch files>``: a changed patch reinstalls detectron2."""
    digest = hashlib.sha256()
    for path in patch_files():
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return f"{SDIST_VERSION}+dicod.{digest.hexdigest()[:8]}"


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


def check_standalone() -> None:
    """detectron2's main packages import in a clean interpreter without importing this project."""
    code = (
        "import sys, detectron2.data, detectron2.engine, detectron2.evaluation, detectron2.export, "
        "detectron2.model_zoo, detectron2.modeling\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'dicod_d2'))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tempfile.gettempdir()
    )
    if res.returncode != 0 or res.stdout.strip() != "[]":
        raise PatchError(f"the installed detectron2 does not import on its own: {res.stderr[-2000:]}"
                         f"{res.stdout.strip()}")


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


@dataclass
class FilePatch:
    """The hunks of one file in a unified diff: ``hunks`` are (old start line, lines with their
    ' ', '-' or '+' prefix); ``old_start`` 0 with only '+' lines creates the file."""

    path: str
    hunks: list[tuple[int, list[str]]] = field(default_factory=list)


_HUNK = re.compile(r"@@ -(\d+)(?:,\d+)? \+\d+(?:,\d+)? @@")


def parse_patch(text: str, name: str) -> list[FilePatch]:
    """The file patches of a unified diff (lines before the first ``---`` are its description)."""
    files: list[FilePatch] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ b/"):
            files.append(FilePatch(lines[i + 1][len("+++ b/"):].split("\t")[0]))
            i += 2
            continue
        match = _HUNK.match(line)
        if match and files:
            files[-1].hunks.append((int(match[1]), []))
        elif files and files[-1].hunks and line[:1] in (" ", "-", "+", ""):
            files[-1].hunks[-1][1].append(line or " ")  # a blank context line may lose its space
        elif files and line.startswith("\\"):
            raise PatchError(f"{name}: 'No newline at end of file' is not supported")
        i += 1
    if not files or not all(f.hunks for f in files):
        raise PatchError(f"{name}: not a unified diff with at least one hunk per file")
    return files


def apply_patch(root: Path, patch: Path) -> list[str]:
    """Apply ``patch`` to the tree at ``root``; every hunk must match its context exactly, at its
    line number (shifted by the earlier hunks). Returns the paths it changed."""
    file_patches = parse_patch(patch.read_text(), patch.name)
    for fp in file_patches:
        target = root / fp.path
        creates = fp.hunks[0][0] == 0
        if creates == target.exists():
            state = "already exists" if creates else "does not exist"
            raise PatchError(f"{patch.name}: {fp.path} {state} in the sdist")
        lines = [] if creates else target.read_text().splitlines()
        shift = 0
        for start, hunk in fp.hunks:
            old = [h[1:] for h in hunk if h[0] in " -"]
            new = [h[1:] for h in hunk if h[0] in " +"]
            at = max(start - 1, 0) + shift
            if lines[at:at + len(old)] != old:
                raise PatchError(
                    f"{patch.name}: hunk at line {start} of {fp.path} does not match the sdist's "
                    "sources; the patch was written for another detectron2"
                )
            lines[at:at + len(old)] = new
            shift += len(new) - len(old)
        target.write_text("\n".join(lines) + "\n")
    return [fp.path for fp in file_patches]


def patch_sources(root: Path) -> list[str]:
    """Apply every patch of :data:`PATCH_DIR` to the unpacked sdist at ``root``, in order; drop its
    stale egg-info. Returns the package files changed (``detectron2/...``)."""
    changed = []
    for patch in patch_files():
        changed += apply_patch(root, patch)
        log(f"applied {patch.name}")
    shutil.rmtree(root / "pb1_detectron2.egg-info", ignore_errors=True)
    return sorted({path for path in changed if path.startswith("detectron2/")})


def check_installed_files(root: Path, changed: list[str], package_dir: Path) -> None:
    """Each patched package file is installed byte for byte."""
    differ = [p for p in changed if (package_dir.parent / p).read_bytes() != (root / p).read_bytes()]
    if differ:
        raise PatchError(f"installed detectron2 files differ from the patched sources: {differ}")


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
    version = installed_version()
    if state.get("importable") and state.get("version") == version and not args.force:
        log(f"detectron2 {version} already installed: nothing to do")
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
        changed = patch_sources(root)
        log(f"building and installing detectron2 {version} without compiled ops")
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-build-isolation", "--no-deps",
             "--no-cache-dir", str(root)],
            check=True,
            # setup.py's get_version() appends it to detectron2's "0.6"
            env={**os.environ, "D2_VERSION_SUFFIX": version[len(SDIST_VERSION):]},
        )
        state = probe_installed()
        if not state.get("importable") or state.get("version") != version:
            raise SystemExit(f"detectron2 {version} installed but does not import: {state}")
        check_installed_files(root, changed, Path(state["path"]).parent)
        check_standalone()
    log(f"detectron2 {state['version']} installed at {Path(state['path']).parent}; "
        f"patched files checked: {len(changed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
