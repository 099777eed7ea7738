"""The layout's rules, read from the source (issue 25): each module name once across the three packages,
no import circle among the pack's modules, nothing outside tests/ importing tests/, and small functions."""
import ast
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("nodes", "pci_core", "pci_cluster")
MAX_FUNCTION_LINES = 60  # schema declarations (define_schema) are lists of inputs, not logic


def pack_modules() -> dict[str, Path]:
    """Dotted module name (the pack root as '') -> file, for the pack's packages and its __init__.py."""
    found = {"": REPO / "__init__.py"}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The pack modules a module imports (relative imports resolved; `from P import m` counts P.m when it is
    a module), at any depth of the file (function-level imports are arrows too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target.split(".")[0] not in PACKAGES and target != "":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}" if target else alias.name
                out.add(sub if sub in modules else target)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] in PACKAGES}
    return {m for m in out if m in modules and m != name}


def test_each_module_name_once_across_the_packages():
    names = defaultdict(list)
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            if path.stem not in ("__init__", "__main__"):
                names[path.stem].append(path.relative_to(REPO).as_posix())
    twice = {n: paths for n, paths in names.items() if len(paths) > 1}
    assert not twice, f"module names used more than once: {twice}"


def test_no_import_circle_among_the_packs_modules():
    modules = pack_modules()
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    # a package's __init__ that re-exports its own modules is the package's face, not a room of its own
    for name in graph:
        graph[name] = {m for m in graph[name] if not (m and name.startswith(m + ".") or (m == "" and name))}
    state, circles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                circles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not circles, f"import circles: {circles}"


def test_the_circle_check_sees_a_circle():
    modules = pack_modules()
    assert "pci_core.arg_checks" in imports_of("pci_core.demo.commands", modules["pci_core.demo.commands"], modules)
    assert "pci_cluster.study_driver" in imports_of("pci_core.cli", modules["pci_core.cli"], modules)
    assert "pci_core.cli" not in imports_of("pci_cluster.study_driver", modules["pci_cluster.study_driver"], modules)


def test_nothing_outside_tests_imports_tests():
    offenders = []
    for path in REPO.rglob("*.py"):
        rel = path.relative_to(REPO)
        if rel.parts[0] in ("tests",) or any(p.startswith(".") for p in rel.parts):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n == "tests" or n.startswith("tests.") for n in names):
                offenders.append(rel.as_posix())
        text = path.read_text(encoding="utf-8")
        if '"tests" / "host"' in text or "tests/host\"" in text:
            offenders.append(f"{rel.as_posix()} (puts tests/host on sys.path)")
    assert not offenders, offenders


def test_no_function_over_60_lines_but_schema_declarations():
    long = []
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name != "define_schema":
                    lines = node.end_lineno - node.lineno + 1
                    if lines > MAX_FUNCTION_LINES:
                        long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long
