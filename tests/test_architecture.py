"""The house's rules, read from the source: rooms import only the rooms below them, no cycles, no
crowded folder, the runtime free of torch and training; docs/architecture.md's picture generated
from the code; the folders mapped into `mmrt.*` as pyproject says; every lab script saying what
quotes it."""

import ast
import importlib.util
import re
from pathlib import Path

import pytest

from lab.architecture import (
    DOC,
    ROOT,
    Module,
    _imported,
    cycles,
    problems,
    read_modules,
    render,
    room_of,
    setuptools_config,
)
from lab.generated import generated_part


@pytest.fixture(scope="module")
def modules():
    return read_modules()


def test_the_import_rules_hold(modules):
    assert problems(modules) == []


def test_the_lab_scripts_have_no_import_cycle_either():
    assert cycles(read_modules(lab=True)) == []


def test_the_architecture_page_is_what_the_code_generates(modules):
    assert generated_part(DOC.read_text("utf-8")) == render(modules), \
        "docs/architecture.md has drifted: python -m lab.architecture --write"


def fake(name: str, *imports: str, third_party: tuple[str, ...] = ()) -> Module:
    return Module(name, ROOT / "x" / f"{name}.py", frozenset(imports), frozenset(third_party))


def test_each_rule_catches_what_it_forbids():
    found = problems({m.name: m for m in [
        fake("mmrt.atomic", "mmrt.cli.entry"),  # the core reaching up
        fake("mmrt.cli.entry", "mmrt.atomic"),
        fake("mmrt.runtime.engine.a", "mmrt.runtime.frontends.b"),  # a room reaching up
        fake("mmrt.runtime.frontends.b"),
        fake("mmrt.runtime.backends.c", "mmrt.training.model.d", third_party=("torch",)),
        fake("mmrt.training.model.d"),
        fake("mmrt.runtime.backends.g", "mmrt.scores"), fake("mmrt.scores", third_party=("scipy",)),
        fake("mmrt.training.datagen.h", "mmrt.training.data.i"),
        fake("mmrt.training.data.i", third_party=("torch",)),
        fake("mmrt.benchmarks.j", "mmrt.runtime.backends.g"),
        fake("mmrt.export.e", "mmrt.export.f"), fake("mmrt.export.f", "mmrt.export.e"),  # a cycle
    ]})
    assert "mmrt.atomic imports mmrt.cli.entry: room mmrt may not import room mmrt.cli" in found
    assert any(p.startswith("mmrt.runtime.engine.a imports mmrt.runtime.frontends.b") for p in found)
    assert any(p.startswith("mmrt.runtime.backends.c imports mmrt.training.model.d") for p in found)
    assert "mmrt.runtime.backends.c reaches torch (mmrt.runtime.backends.c): not in the serve extra" in found
    through_core = "mmrt.runtime.backends.g reaches scipy (mmrt.runtime.backends.g -> mmrt.scores)"
    assert f"{through_core}: not in the serve extra" in found  # what the runtime imports counts too
    assert "mmrt.training.datagen.h reaches torch (mmrt.training.datagen.h -> mmrt.training.data.i)" in found
    assert any(p.startswith("mmrt.benchmarks.j imports mmrt.runtime.backends.g") for p in found)
    assert "import cycle: mmrt.export.e -> mmrt.export.f" in found
    crowded = {f"mmrt.m{i}": fake(f"mmrt.m{i}") for i in range(17)}
    assert [p for p in problems(crowded) if "side by side" in p] == ["x/ holds 17 modules side by side, "
                                                                     "more than 16"]


def test_function_local_and_relative_imports_count():
    """A cycle closed inside a function is still a cycle: the reader sees function-local imports,
    and resolves relative ones and ``from package import module``."""
    known = {"mmrt.atomic", "mmrt.cli.entry", "mmrt.runtime.engine", "mmrt.runtime.engine.limits"}
    tree = ast.parse("import numpy\ndef f():\n    from mmrt.cli.entry import main\n"
                     "from .engine import limits\n")
    ours, others = _imported(tree, "mmrt.runtime.x", False, known)
    assert ours == {"mmrt.cli.entry", "mmrt.runtime.engine.limits"} and others == {"numpy"}


def test_the_command_line_imports_every_other_room_and_nothing_imports_it(modules):
    reached = {room_of(t) for m in modules.values() if room_of(m.name) == "mmrt.cli" for t in m.imports}
    for package in ("mmrt", "mmrt.runtime", "mmrt.training", "mmrt.export", "mmrt.benchmarks"):
        assert any(r == package or r.startswith(package + ".") for r in reached), package
    importers = {m.name for m in modules.values() if room_of(m.name) != "mmrt.cli"
                 and any(room_of(t) == "mmrt.cli" for t in m.imports)}
    assert importers == {"mmrt.__main__"}


def test_pyproject_maps_every_folder_and_the_installed_package_follows_it():
    """package-dir is the one place folders map into ``mmrt.*``: every package folder is listed,
    and the installed package finds each listed one where pyproject says."""
    setup = setuptools_config()
    folders, listed = setup["package-dir"], set(setup["packages"])

    def folder_of(name: str) -> Path:
        pkg = max((p for p in folders if name == p or name.startswith(p + ".")), key=len)
        return ROOT / folders[pkg] / name[len(pkg):].lstrip(".").replace(".", "/")

    for pkg, folder in folders.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            name = ".".join((pkg, *init.parent.relative_to(ROOT / folder).parts))
            assert name in listed, f"{init.parent.relative_to(ROOT)} is a package pyproject does not list"
    for name in sorted(listed):
        spec = importlib.util.find_spec(name)
        assert spec is not None and folder_of(name).is_dir(), name
        assert Path(spec.submodule_search_locations[0]) == folder_of(name), name


def test_every_lab_script_names_the_pages_that_quote_it_or_the_scripts_it_serves():
    pages = [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]
    for script in sorted((ROOT / "lab").glob("*.py")):
        if script.name == "__init__.py":
            continue
        doc = ast.get_docstring(ast.parse(script.read_text("utf-8"))) or ""
        name = script.stem
        quoting = {str(p.relative_to(ROOT)) for p in pages
                   if re.search(rf"lab\.{name}\b|lab/{name}\.py", p.read_text("utf-8"))}
        named = set(re.findall(r"(?:docs/[\w/.-]+\.md|README\.md)", doc))
        assert quoting <= named, f"lab/{script.name}: quoted in {sorted(quoting - named)}, not said so"
        assert all((ROOT / p).is_file() for p in named), f"lab/{script.name} names a missing page"
        if not quoting:
            used_by = re.findall(r"lab/(\w+)\.py", doc)
            assert used_by, f"lab/{script.name}: quoted nowhere and serves no named script"
            assert all(re.search(rf"from lab\.{name} import", (ROOT / "lab" / f"{u}.py").read_text("utf-8"))
                       for u in used_by), f"lab/{script.name}: names a script that does not use it"
