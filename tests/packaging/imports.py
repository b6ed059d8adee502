"""What each module of personae imports from other distributions, read with `ast`.

An import is *lazy* inside a function body, *optional* inside a `try` whose
`except ImportError` names no extra (the code copes without it, or tells the user to
install it by hand), and *guarded by* extra X when that handler's message names
`personae[X]` (or calls `missing_extra(package, "X")`). Imports under
`if TYPE_CHECKING:` never run and are left out.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: source folder -> import name (setup.py)
FOLDERS = {"sdk": "personae.sdk", "daemon": "personae.daemon", "training": "personae.training"}
OPTIONAL = "(optional)"


@dataclass(frozen=True)
class Use:
    target: str  # dotted name as imported
    line: int
    lazy: bool
    guard: str | None  # an extra's name, OPTIONAL, or None

    @property
    def top(self) -> str:
        return self.target.partition(".")[0]

    @property
    def first_party(self) -> bool:
        return self.top == "personae"

    @property
    def third_party(self) -> bool:
        return not self.first_party and self.top not in sys.stdlib_module_names | {"__future__"}


def modules() -> dict[str, Path]:
    """Every module under the three folders, by its import name."""
    found = {}
    for folder, name in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if "__pycache__" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((name, *parts))] = path
    return found


def _guard_of(handlers: list[ast.ExceptHandler]) -> str | None:
    catches = [h for h in handlers if h.type is None or _names_import_error(h.type)]
    if not catches:
        return None
    for handler in catches:
        for node in ast.walk(handler):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                named = re.search(r"personae\[(\w+)\]", node.value)
                if named:
                    return named[1]
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", None)) == "missing_extra"
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
            ):
                return str(node.args[1].value)
    return OPTIONAL


def _names_import_error(node: ast.expr) -> bool:
    names = node.elts if isinstance(node, ast.Tuple) else [node]
    return any(getattr(n, "id", None) in ("ImportError", "ModuleNotFoundError") for n in names)


def _is_type_checking(test: ast.expr) -> bool:
    return getattr(test, "id", getattr(test, "attr", None)) == "TYPE_CHECKING"


class _Collector(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool) -> None:
        self.package = module if is_package else module.rpartition(".")[0]
        self.uses: list[Use] = []
        self._functions = 0  # how deep in function bodies
        self._guards: list[str] = []

    def _add(self, target: str, node: ast.stmt) -> None:
        guard = self._guards[-1] if self._guards else None
        self.uses.append(Use(target, node.lineno, self._functions > 0, guard))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")
            base = base[: len(base) - node.level + 1]
            module = ".".join([*base, node.module] if node.module else base)
        else:
            module = node.module or ""
        for alias in node.names:
            # `from package import submodule` imports the submodule; resolved later
            self._add(f"{module}.{alias.name}" if alias.name != "*" else module, node)

    def visit_If(self, node: ast.If) -> None:
        if not _is_type_checking(node.test):
            self.generic_visit(node)
        else:
            for stmt in node.orelse:
                self.visit(stmt)

    def visit_Try(self, node: ast.Try) -> None:
        guard = _guard_of(node.handlers)
        if guard:
            self._guards.append(guard)
        for stmt in node.body:
            self.visit(stmt)
        if guard:
            self._guards.pop()
        for stmt in [*node.handlers, *node.orelse, *node.finalbody]:
            self.visit(stmt)

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for expr in [*node.decorator_list, *node.args.defaults, *node.args.kw_defaults]:
            if expr is not None:
                self.visit(expr)
        self._functions += 1
        for stmt in node.body:
            self.visit(stmt)
        self._functions -= 1

    visit_FunctionDef = _visit_function
    visit_AsyncFunctionDef = _visit_function


def uses_of(module: str, path: Path) -> list[Use]:
    collector = _Collector(module, path.name == "__init__.py")
    collector.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    return collector.uses


def resolve(target: str, known: dict[str, Path]) -> list[str]:
    """The personae modules that importing `target` runs: it and its packages."""
    while target and target not in known:
        target = target.rpartition(".")[0]
    parts = target.split(".")
    return [m for i in range(2, len(parts) + 1) if (m := ".".join(parts[:i])) in known]
