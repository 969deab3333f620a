"""The package's import graph has no circle, and Keras's private names live in one module.

Every import statement counts, also one inside a function (a circle hidden
there still ties the modules together). Private Keras names go through
adder_tf/_keras_internals.py only, so a Keras upgrade breaks in one place.
"""
import ast
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "adder_tf")
INTERNALS = os.path.join(PACKAGE, "_keras_internals.py")
KERAS_PRIVATE = re.compile(r"keras\.src|\._(flatten_layers|keras_history|inbound_nodes|"
                           r"maybe_symbolic_build|var_key|use_weight_decay|log_weights|"
                           r"train_writer)\b|def _(maybe_symbolic_build|log_weights)\b")


def modules():
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                module = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                found[module[:-len(".__init__")] if module.endswith(".__init__") else module] = path
    return found


def import_graph():
    """module -> the package's modules it imports (anywhere in its text)."""
    paths = modules()
    graph = {}
    for module, path in paths.items():
        package = module if path.endswith("__init__.py") else module.rsplit(".", 1)[0]
        edges = set()
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name in paths}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                for alias in node.names:
                    target = f"{base}.{alias.name}"
                    edges |= {target} if target in paths else ({base} if base in paths else set())
        graph[module] = edges - {module}
    return graph


def circles(graph):
    """Groups of modules that import one another (strongly connected, more than one)."""
    def reach(start):
        seen, todo = set(), [start]
        while todo:
            for nxt in graph[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen
    reachable = {m: reach(m) for m in graph}
    groups = {frozenset({m} | {n for n in reachable[m] if m in reachable[n]}) for m in graph}
    return sorted(sorted(g) for g in groups if len(g) > 1)


def test_no_module_of_the_package_imports_one_that_imports_it_back():
    graph = import_graph()
    assert "adder_tf.batchnorm" in graph and graph["adder_tf.convert"]   # the graph was read
    assert circles(graph) == []


def test_the_circle_finder_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_private_keras_names_are_used_in_the_internals_module_only():
    outside = []
    for path in modules().values():
        if path == INTERNALS:
            continue
        for number, line in enumerate(open(path), 1):
            if KERAS_PRIVATE.search(line):
                outside.append(f"{os.path.relpath(path, ROOT)}:{number}: {line.strip()}")
    assert outside == []
    assert KERAS_PRIVATE.search(open(INTERNALS).read())   # the pattern matches what is there
