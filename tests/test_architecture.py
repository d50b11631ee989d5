"""Front ends use public seams only (issue 12): walk the source of the CLI and the napari package.

A front end must not import the training loop (``selfdenoise.train``), touch a private
attribute of an engine object, or edit a model's configuration or history in place. The checks
read the syntax tree, so they see every use, whether or not a test runs that code.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "selfdenoise"
FRONT_ENDS = sorted(
    [SOURCE / "cli.py", *(SOURCE / "_cli").glob("*.py"), *(SOURCE / "_napari").glob("*.py")]
)
PROTECTED_ATTRIBUTES = ("config", "history")
"""A front end reads these engine attributes but never assigns them or anything inside them."""


def _module_aliases(tree: ast.Module) -> set[str]:
    """Names bound by import statements anywhere in the module (modules and their members)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def _absolute(node: ast.ImportFrom, package: str) -> str:
    """The absolute module an ``import from`` names, resolved against ``package``."""
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    base = parts[: len(parts) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


def _imports_train(node: ast.AST, package: str) -> bool:
    if isinstance(node, ast.Import):
        return any(alias.name == "selfdenoise.train" for alias in node.names)
    if isinstance(node, ast.ImportFrom):
        module = _absolute(node, package)
        if module == "selfdenoise.train":
            return True
        return module == "selfdenoise" and any(alias.name == "train" for alias in node.names)
    return False


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _chain(node: ast.AST) -> list[str]:
    """``a.b.c`` -> ['a', 'b', 'c'] (non-name roots become '?')."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    parts.append(node.id if isinstance(node, ast.Name) else "?")
    return parts[::-1]


def _assigned_targets(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, ast.Assign):
        targets = list(node.targets)
    elif isinstance(node, ast.AugAssign | ast.AnnAssign):
        targets = [node.target]
    else:
        return []
    flat: list[ast.AST] = []
    for target in targets:
        flat.extend(target.elts if isinstance(target, ast.Tuple | ast.List) else [target])
    return flat


def violations(path: Path) -> list[str]:
    """Every use of a non-public seam in one source file, as 'file:line: what'."""
    label = str(path.relative_to(SOURCE.parent))
    package = ".".join(path.relative_to(SOURCE.parent).parent.parts)
    return violations_in(path.read_text(encoding="utf-8"), label, package)


def violations_in(
    code: str, label: str = "<code>", package: str = "selfdenoise._napari"
) -> list[str]:
    """:func:`violations` for source text."""
    tree = ast.parse(code, filename=label)
    aliases = _module_aliases(tree) | {"self", "cls"}
    found: list[str] = []

    def report(node: ast.AST, what: str) -> None:
        found.append(f"{label}:{getattr(node, 'lineno', 0)}: {what}")

    for node in ast.walk(tree):
        if _imports_train(node, package):
            report(node, "imports selfdenoise.train (use the Denoiser API)")
        if isinstance(node, ast.Attribute) and _is_private(node.attr):
            root = node.value
            if not (isinstance(root, ast.Name) and root.id in aliases):
                report(node, f"private attribute {'.'.join(_chain(node))}")
        for target in _assigned_targets(node):
            if isinstance(target, ast.Subscript):
                target = target.value
            if not isinstance(target, ast.Attribute):
                continue
            chain = _chain(target)
            own = len(chain) == 2 and chain[0] == "self"  # an object's own attribute
            if not own and any(part in PROTECTED_ATTRIBUTES for part in chain[1:]):
                report(target, f"assigns {'.'.join(chain)} (engine state edited in place)")
    return found


@pytest.mark.parametrize("path", FRONT_ENDS, ids=lambda p: p.name)
def test_front_end_uses_public_seams_only(path):
    assert violations(path) == []


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("from ..train import distributed_teardown", "imports selfdenoise.train"),
        ("from .. import train", "imports selfdenoise.train"),
        ("import selfdenoise.train", "imports selfdenoise.train"),
        ("from selfdenoise.train import Progress", "imports selfdenoise.train"),
        ("denoiser._prediction_layout(x)", "private attribute denoiser._prediction_layout"),
        ("model._device = None", "private attribute model._device"),
        ("self.model._stop_event.set()", "private attribute self.model._stop_event"),
        ("model.config.training.device = 'cpu'", "assigns model.config.training.device"),
        ("self.denoiser.config.masking.fraction = 0.1", "assigns self.denoiser.config"),
        ("denoiser.history = []", "assigns denoiser.history"),
        ("denoiser.history[0] = row", "assigns denoiser.history"),
        ("model.config = other", "assigns model.config"),
    ],
)
def test_the_checks_catch_each_kind_of_reaching_in(code, expected):
    found = violations_in(code)
    assert any(expected in line for line in found), found


@pytest.mark.parametrize(
    "code",
    [
        "import numpy as np\nnp._NoValue",
        "self._stop_event.set()",
        "self._budget = (1, None)",
        "from ..api import Denoiser\nmodel = Denoiser.load(path)",
        "history = list(model.history)",
        "self.config = make_config()",
        "from .. import api\napi._cast_output",
        "from ..training import schedule",
        "from ._cli.train import cmd_train",
    ],
)
def test_public_uses_pass(code):
    assert violations_in(code, package="selfdenoise") == []
