"""The module layout stays a one-way flow: no import cycle among the modules of qa/ and ui/,
and no library, app or benchmark file imports another module's private (`_name`) names."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("qa", "ui")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) of every import in the file, those
    inside functions included (they run too), absolute and relative alike."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((base, [alias.name for alias in node.names], node.lineno))
    return found


def files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def test_no_import_cycle_among_qa_and_ui_modules():
    modules = {module_name(p): p for p in files(*PACKAGES)}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for module, names, _ in imports(path):
            # `from qa.stores import folder` imports the submodule qa.stores.folder.
            targets = [f"{module}.{n}" for n in names if f"{module}.{n}" in modules]
            edges.update(targets or ([module] if module in modules else []))
        graph[name] = edges - {name}

    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, " ; ".join(" -> ".join(c) for c in cycles)


def test_no_module_imports_a_private_name_of_another():
    offences = []
    for path in files(*PACKAGES, "benchmarks"):
        for module, names, line in imports(path):
            private = [n for n in names if n.startswith("_") and n != "__future__"]
            if module.split(".")[-1].startswith("_") and not module.endswith("__init__"):
                private.append(module)
            if private and module != "__future__":
                offences.append(f"{path.relative_to(ROOT)}:{line} {module}: {private}")
    assert not offences, "\n".join(offences)


def test_the_checks_see_imports(tmp_path):
    """The walk reads relative imports and imports inside functions (else both tests above
    would pass by seeing nothing)."""
    seen = {m for m, _, _ in imports(ROOT / "qa" / "build.py")}
    assert {"qa.stores", "qa.types", "qa.index.split"} <= seen
    seen = {m for m, _, _ in imports(ROOT / "qa" / "cli.py")}
    assert "qa.build" in seen  # imported inside `cmd_build`


def test_the_library_never_imports_the_app():
    """qa/ is the library, ui/ the app that uses it: `qa serve` finds the app through the
    entry point the app registers (pyproject.toml), never by importing it."""
    offences = [
        f"{path.relative_to(ROOT)}:{line} {module}"
        for path in files("qa")
        for module, _, line in imports(path)
        if module == "ui" or module.startswith("ui.")
    ]
    assert not offences, "\n".join(offences)


def test_the_reading_process_imports_only_modules_of_qa_read():
    """A PDF or .docx is parsed in a process that loads qa/read/ as a package of its own
    (qa/read/sandbox.py), not the qa package: whatever runs there (sandbox_worker.py and
    what it imports) imports no module outside qa/read/, nor qa/read/__init__.py."""
    modules = {module_name(p): p for p in files("qa")}
    todo, seen, outside = ["qa.read.sandbox_worker"], set(), []
    while todo:
        name = todo.pop()
        seen.add(name)
        for module, names, line in imports(modules[name]):
            targets = [f"{module}.{n}" for n in names if f"{module}.{n}" in modules]
            for target in targets or [module]:
                if target.startswith("qa.read.") and target in modules:
                    todo += [] if target in seen else [target]
                elif target == "qa" or target.startswith("qa."):
                    outside.append(f"{modules[name].relative_to(ROOT)}:{line} {target}")
    assert {"qa.read.pdf", "qa.read.docx", "qa.read.limits"} <= seen  # the walk sees them
    assert not outside, "\n".join(outside)


def test_an_install_holds_every_package_of_qa_and_ui():
    """A wheel holds the packages pyproject.toml names: every folder of qa/ and ui/ with code
    (naming the top two alone gave a wheel with 7 modules whose `import qa` failed)."""
    import tomllib
    from setuptools import find_packages

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    found = config["setuptools"].get("packages")
    if not isinstance(found, list):
        found = find_packages(str(ROOT), **config["setuptools"]["packages"]["find"])
    folders = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in files(*PACKAGES)
        if p.name != "conftest.py"
    }
    assert folders <= set(found), sorted(folders - set(found))


def test_an_install_holds_the_reader_model():
    """The reader's files (qa/models/reader) are package data: an installed qa reads them."""
    from fnmatch import fnmatch

    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    patterns = config["setuptools"]["package-data"]["qa"]
    shipped = [p.relative_to(ROOT / "qa").as_posix() for p in (ROOT / "qa/models/reader").iterdir()]
    assert {"model-int8.onnx", "reader.json", "tokenizer.json", "trained.json"} <= {
        Path(p).name for p in shipped
    }
    assert all(any(fnmatch(p, pattern) for pattern in patterns) for p in shipped)


STAGES = ("read", "index", "stores", "answer", "generate", "eval")  # in the order data flows


def test_a_stage_imports_only_the_stages_before_it():
    """qa/read -> qa/index -> qa/stores -> qa/answer -> qa/generate -> qa/eval: a stage may
    use those before it, never one after it (so the folders read as the data's path)."""
    offences = []
    for path in files("qa"):
        here = module_name(path).split(".")
        if len(here) < 2 or here[1] not in STAGES:
            continue
        for module, _, line in imports(path):
            there = module.split(".")
            if there[0] == "qa" and len(there) > 1 and there[1] in STAGES:
                if STAGES.index(there[1]) > STAGES.index(here[1]):
                    offences.append(f"{path.relative_to(ROOT)}:{line} {module}")
    assert not offences, "\n".join(offences)
