"""The package's import graph has no circle, and Keras's private names live in one module.

Every import statement counts, also one inside a function (a circle hidden
there still ties the modules together). Private Keras names go through
adder_tf/_keras_internals.py only, so a Keras upgrade breaks in one place:
outside it, no module reads, writes or defines an attribute `_x` that some
class of the installed Keras defines (`def _x` or `self._x = ...` anywhere in
keras/src), unless the module defines that name itself on a class of its own
that does not derive from a Keras class.
"""
import ast
import functools
import glob
import importlib.util
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


def _private(name):
    return name.startswith("_") and not name.startswith("__")


@functools.lru_cache(maxsize=None)
def keras_private_attributes():
    """Every private attribute name a class of the installed Keras defines."""
    (location,) = importlib.util.find_spec("keras").submodule_search_locations
    names = set()
    for path in glob.glob(os.path.join(location, "src", "**", "*.py"), recursive=True):
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _private(node.name):
                names.add(node.name)
            elif (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
                  and isinstance(node.value, ast.Name) and node.value.id == "self"
                  and _private(node.attr)):
                names.add(node.attr)
    return names


def private_attributes(source):
    """(names the source accesses or defines as attributes `_x`, names it defines on classes
    of its own that derive from no Keras class)."""
    tree = ast.parse(source)
    from_keras = {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                  and (node.module or "").split(".")[-1] in ("keras", "_keras_internals")
                  for a in node.names}
    classes = [node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    kerasish = set()
    for _ in classes:   # a class derived from one derived from Keras derives from Keras
        kerasish |= {c.name for c in classes if any(
            "keras" in ast.unparse(b) or ast.unparse(b).split(".")[0] in from_keras | kerasish
            for b in c.bases)}
    used, own = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            used.add(node.attr)
    for cls in classes:
        defined = {n.name for n in ast.walk(cls) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                   and _private(n.name) and n in cls.body}
        defined |= {n.attr for n in ast.walk(cls) if isinstance(n, ast.Attribute)
                    and isinstance(n.ctx, ast.Store) and _private(n.attr)}
        used |= defined
        if cls.name not in kerasish:
            own |= defined
    return used, own


def test_no_private_attribute_of_keras_is_touched_outside_the_internals_module():
    keras_names = keras_private_attributes()
    assert {"_flatten_layers", "_save_model", "_weights_path"} <= keras_names   # Keras was read
    outside = []
    for path in modules().values():
        if path != INTERNALS:
            used, own = private_attributes(open(path).read())
            outside += [f"{os.path.relpath(path, ROOT)}: {name}"
                        for name in sorted((used - own) & keras_names)]
    assert outside == []


def test_the_private_attribute_finder_sees_overrides_and_reads():
    subclass = ("import keras\nclass B(keras.callbacks.Callback):\n"
                "    def _save_model(self):\n        return self.model._initial_epoch\n")
    used, own = private_attributes(subclass)
    assert {"_save_model", "_initial_epoch"} <= used and not own
    plain = "class C:\n    def _load(self):\n        self._start = 1\n"
    assert private_attributes(plain) == ({"_load", "_start"}, {"_load", "_start"})


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
