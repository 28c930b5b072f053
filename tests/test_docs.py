"""The user documents quote what exists: every repository path, every ``tools/*.py --flag``, every
``make`` target and the README's config example (loaded for real)."""
import re
import shutil
from functools import lru_cache

import pytest
from _helpers import REPO, run_tool

DOCS = ("README.md", "projects/DICOD/README.md", "projects/DICOD/RESULTS.md", "CHANGELOG.md")
#: first components of quoted paths that live in the repository (output/, datasets/, weights/ do not)
REPO_ROOTS = ("dicod_d2/", "configs/", "tools/", "tests/", "projects/", ".ci/", "Makefile",
              "requirements.txt", "README.md", "CHANGELOG.md", "setup.py", "pyproject.toml")
PATH = re.compile(r"(?<![\w./-])(?:\.ci|dicod_d2|configs|tools|tests|projects|Makefile|requirements\.txt|"
                  r"README\.md|CHANGELOG\.md|setup\.py|pyproject\.toml)(?:/(?:[\w.*-]|\{[\w.,-]*\})*)*")
LINK = re.compile(r"\]\(([^)\s]+)\)")
TOOL = re.compile(r"(?<![\w/])tools/(\w+)\.py")
FLAG = re.compile(r"(?<![\w-])--[a-z][\w-]*")


def _text(doc):
    """The document with shell line continuations joined."""
    return (REPO / doc).read_text().replace("\\\n", " ")


def _expand(path):
    """``a_{1,2}.py`` -> ``a_1.py``, ``a_2.py`` (shell brace expansion, one level per brace)."""
    match = re.search(r"\{([^{}]*)\}", path)
    if match is None:
        return [path]
    return [q for alt in match[1].split(",") for q in _expand(path[: match.start()] + alt + path[match.end():])]


def quoted_paths(doc):
    """Repository paths quoted in ``doc``: path-like words under the repository's roots, and links."""
    text = _text(doc)
    found = set()
    for word in PATH.findall(text):
        word = word.rstrip(".,;:")
        name = word.rsplit("/", 1)[-1]
        if name.startswith("my_") or name.split(".")[0].isupper():  # the reader's file, a placeholder (NAME)
            continue
        found.update(_expand(word))
    for link in LINK.findall(text):
        if "://" not in link and not link.startswith("#"):
            found.add(str(((REPO / doc).parent / link.split("#")[0]).resolve().relative_to(REPO)))
    return sorted(found)


@pytest.mark.parametrize("doc", DOCS)
def test_every_quoted_repository_path_exists(doc):
    paths = quoted_paths(doc)
    assert len(paths) > 3, f"no path found in {doc}: the pattern is broken"
    missing = [p for p in paths if not (any(REPO.glob(p)) if "*" in p else (REPO / p).exists())]
    assert not missing, f"{doc} quotes paths that do not exist: {missing}"


def test_the_path_finder_sees_a_missing_path():
    assert _expand("configs/coco/r_{56,112}_x.py") == ["configs/coco/r_56_x.py", "configs/coco/r_112_x.py"]
    found = PATH.findall("run `tools/nope.py --x` and configs/a/{b,c}.py, not output/tools/x.py")
    assert found == ["tools/nope.py", "configs/a/{b,c}.py"]
    assert not (REPO / found[0]).exists()


def quoted_commands(doc):
    """``(tool, [flags])`` for every ``tools/<tool>.py`` call in ``doc`` (up to the end of its line,
    a comment, a closing backtick or the next tool), with the subcommand when the tool has one."""
    calls = []
    for line in _text(doc).splitlines():
        parts = TOOL.split(line)
        for tool, rest in zip(parts[1::2], parts[2::2], strict=True):
            rest = re.split(r"`|\s#\s|;", rest)[0]
            words = rest.split()
            sub = words[0] if words and re.fullmatch(r"[a-z][a-z-]*", words[0]) else None
            calls.append((tool, sub, FLAG.findall(rest)))
    return calls


@lru_cache(maxsize=None)
def _help(tool, sub=None):
    done = run_tool(f"{tool}.py", *([sub] if sub else []), "--help")
    assert done.returncode == 0, f"tools/{tool}.py {sub or ''} --help failed: {done.stderr[-2000:]}"
    return done.stdout


def _flags_of(tool, sub):
    text = _help(tool)
    if sub and re.search(r"\{[\w,-]*\b" + sub + r"\b[\w,-]*\}", text):
        text += _help(tool, sub)
    return set(FLAG.findall(text))


@pytest.mark.parametrize("doc", DOCS)
def test_every_quoted_tool_flag_exists(doc):
    calls = quoted_commands(doc)
    if doc == "README.md":
        assert len(calls) > 20
    wrong = []
    for tool, sub, flags in calls:
        assert (REPO / "tools" / f"{tool}.py").is_file(), f"{doc} quotes tools/{tool}.py, which does not exist"
        known = _flags_of(tool, sub)
        wrong += [f"tools/{tool}.py {flag}" for flag in flags if flag not in known]
    assert not wrong, f"{doc} quotes flags the tools do not have: {sorted(set(wrong))}"


def test_the_flag_check_sees_a_wrong_flag():
    assert quoted_commands("README.md")[0][0] in {p.stem for p in (REPO / "tools").glob("*.py")}
    flags = _flags_of("make_fashiondet", None)
    assert "--preset" in flags and "--no-such-flag" not in flags


def test_every_quoted_make_target_exists():
    targets = set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.MULTILINE))
    quoted = set(re.findall(r"\bmake ([a-z][\w-]*)", _text("README.md")))
    assert {"setup", "test", "demo"} <= quoted
    assert quoted <= targets, f"README quotes make targets the Makefile lacks: {quoted - targets}"
    assert "make test" in (REPO / ".ci/run").read_text()


def test_the_readme_config_example_loads(tmp_path):
    from detectron2.config import LazyConfig

    blocks = re.findall(r"```python\n(# (configs/\S+\.py)\n.*?)```", (REPO / "README.md").read_text(), re.DOTALL)
    assert blocks, "the README's config example (a python block starting with '# configs/...') is gone"
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    for source, path in blocks:
        target = tmp_path / path
        target.write_text(source)
        cfg = LazyConfig.load(str(target))
        assert cfg.model.distiller is not None and cfg.model.distiller.temperature == 1
        assert cfg.train.output_dir == "output/fashiondet/faster_rcnn_my_dicod"


#: words about how the project was made, which a user document has no use for
PROCESS_WORDS = re.compile(r"this session|previous session|previous README|target (is|was) met|was lent|"
                           r"was refused|not tried yet|one-off script|\bcommit [0-9a-f]{7,40}\b", re.IGNORECASE)


@pytest.mark.parametrize("doc", (*DOCS, "requirements.txt"))
def test_no_words_about_how_the_project_was_made(doc):
    assert PROCESS_WORDS.search("until commit 301efc9 it built") and PROCESS_WORDS.search("This session")
    found = [m[0] for m in PROCESS_WORDS.finditer((REPO / doc).read_text())]
    assert not found, f"{doc}: {found}"
