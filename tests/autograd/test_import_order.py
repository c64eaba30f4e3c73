"""The modules of ``somanet/autograd`` import each other in one order, with no cycle, counting imports
inside functions too (a late import is a cycle hidden, not broken)."""
import ast
import os

import somanet.autograd as autograd_pkg

HERE = os.path.dirname(autograd_pkg.__file__)


def _imports(name):
    tree = ast.parse(open(os.path.join(HERE, name + ".py"), encoding="utf-8").read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(a.name for a in node.names)
    return found


def test_autograd_modules_import_each_other_without_cycles():
    modules = sorted(f[:-3] for f in os.listdir(HERE) if f.endswith(".py") and f != "__init__.py")
    graph = {m: _imports(m) & set(modules) for m in modules}
    state = {}

    def visit(m, path):
        if state.get(m) == "done":
            return
        assert state.get(m) != "open", f"import cycle in somanet/autograd: {' -> '.join(path + [m])}"
        state[m] = "open"
        for dep in sorted(graph[m]):
            visit(dep, path + [m])
        state[m] = "done"

    for m in modules:
        visit(m, [])
    assert "engine" in graph["recompute"] and "recompute" not in graph["engine"]


def test_tensor_backward_is_the_engine_entry_point():
    import somanet

    x = somanet.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    assert x.grad.tolist() == [2.0, 4.0]
    assert somanet.Tensor.backward.__qualname__ == "Tensor.backward"
