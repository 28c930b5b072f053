"""The library is layered: a subpackage of dicod_d2 imports only subpackages of a lower layer (or
itself), and nothing above the library (tools/, tests/). Read from the sources, nothing imported."""
import ast

import pytest
from _helpers import REPO

#: dicod_d2's subpackages, lowest layer first
LAYERS = (
    ("errors",),  # the user-error types: a leaf module every layer may raise
    ("utils",),
    ("config", "layers", "losses", "solver"),
    ("teacher",),
    ("modeling",),
    ("data",),
    ("evaluation",),
    ("engine",),
    ("inference",),
    ("export",),
    ("cli",),
)
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}
ABOVE_THE_LIBRARY = ("tools", "benchmarking", "demo_pipeline", "results_doc", "tide_report", "tests", "_helpers")
#: the library modules that read a command line (detectron2's argument parser and the dicod-d2 entry point)
COMMAND_LINE_MODULES = ("dicod_d2/cli.py", "dicod_d2/engine/defaults.py")


def _imports(path):
    """Absolute names of the modules ``path`` (a file of dicod_d2) imports."""
    package = path.relative_to(REPO).with_suffix("").parts[:-1]  # a module's or __init__'s package
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                yield ".".join([*base, node.module] if node.module else base)
            else:
                yield node.module


MODULES = sorted((REPO / "dicod_d2").rglob("*.py"))


def test_every_subpackage_has_a_layer():
    subpackages = {p.relative_to(REPO / "dicod_d2").parts[0].removesuffix(".py") for p in MODULES}
    assert subpackages - {"__init__"} == set(RANK)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(REPO)))
def test_imports_stay_within_or_below_the_layer(path):
    own = path.relative_to(REPO / "dicod_d2").parts[0].removesuffix(".py")
    if own == "__init__":
        return
    for name in _imports(path):
        top, _, rest = name.partition(".")
        assert top not in ABOVE_THE_LIBRARY, f"{path} imports {name}, above the library"
        if top == "dicod_d2" and rest:
            other = rest.split(".")[0]
            assert other == own or RANK[other] < RANK[own], (
                f"{path} ({own}, layer {RANK[own]}) imports {name} (layer {RANK[other]})"
            )


def test_tools_packages_are_named_above_the_library():
    packages = {p.parent.name for p in (REPO / "tools").glob("*/__init__.py")}
    assert packages <= set(ABOVE_THE_LIBRARY), f"add {packages - set(ABOVE_THE_LIBRARY)} to ABOVE_THE_LIBRARY"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(REPO)))
def test_command_line_parsing_stays_in_the_tools(path):
    if str(path.relative_to(REPO)) in COMMAND_LINE_MODULES:
        return
    assert "argparse" not in set(_imports(path)), f"{path} parses a command line: move that to tools/"
