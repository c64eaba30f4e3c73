"""Op math takes its array library from its inputs (``backend.array_module``), never from NumPy directly.

A bare ``np.exp`` inside a forward or backward works today and silently pins the op to the CPU the day a
CuPy backend arrives, so the rule is checked on the source rather than trusted to review.
"""
import ast
from pathlib import Path

import numpy as np
import pytest

from somanet import backend

OPS_DIR = Path(__file__).resolve().parent.parent / "somanet" / "ops"

#: Op families that follow the rule; the others join this list as they are converted.
CHECKED_FILES = ("elementwise.py", "reduce.py", "linalg.py", "shape.py", "index.py", "recurrent.py",
                 "attention.py", "activation.py", "norm.py", "loss.py", "conv.py", "pool.py", "special.py")

#: Converted files with too few ops for the five-method guard below, each with its exact number of
#: forward/backward methods: the count keeps their check from passing vacuously all the same.
SMALL_FILES = {"sampling.py": 4, "creation.py": 0, "embedding.py": 2, "dropout.py": 4, "_windows.py": 0}

#: Module-level helpers that forward/backward call for their array math, held to the same rule.
HELPERS = {
    "elementwise.py": ("_sigmoid", "erf_array", "_shape_error", "_normal_cdf_f32", "_gelu_values", "_gelu_grad"),
    "reduce.py": ("_expand", "_rowdot", "sums_along"),
    "linalg.py": ("_swap",),
    "shape.py": ("_pad_index",),
    "index.py": ("_index_add_rows", "_index_add_axis", "_flat_positions", "_prefix", "_index_backward",
                 "_argsort", "_target"),
    "recurrent.py": ("_steps", "_input_rows", "_state", "_sigmoid", "_input_grads", "_rnn_reference",
                     "_rnn_reference_backward", "_lstm_reference", "_lstm_reference_backward", "_gru_reference",
                     "_gru_reference_backward", "_reference_inputs"),
    "attention.py": ("_masked_softmax_", "_softmax_rows_", "_softmax", "_softmax_backward", "_contiguous",
                     "_expand_to", "_rotate"),
    "sampling.py": ("_nearest_sources", "_linear_sources", "_segment_sum", "_shuffle", "_unshuffle"),
    "creation.py": ("_like", "zeros_like", "ones_like", "empty_like", "full_like", "bernoulli", "multinomial"),
    "embedding.py": ("scatter_add_rows", "_renorm_rows"),
    "dropout.py": ("_keep_mask", "_apply"),
    "activation.py": ("rrelu",),
    "norm.py": ("_per_channel_sums", "_per_channel_total", "_row_dots", "_row_means", "_column_sums", "_owned",
                "_window_sum", "_reductions"),
    "loss.py": ("_reduce", "_grad_scale", "_class_indices", "_class_weight", "_class_sums"),
    "conv.py": ("_columns", "reference_forward", "reference_input_grad", "reference_weight_grad"),
    "_windows.py": ("pad2d", "unpad2d", "windows", "contiguous_copy", "im2col", "to_phases", "from_phases",
                    "phase_slab", "col2im"),
    "pool.py": ("_planes", "_avg_counts", "_adaptive_bounds", "_averaging_matrix", "_window_positions"),
}

#: ``np.<name>`` that may stay: dtypes and scalar types, constants, and helpers that never see an array
#: (``errstate`` only sets NumPy's error flags; ``broadcast_shapes`` works on shape tuples).
ALLOWED = frozenset({
    "dtype", "bool_", "float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16",
    "uint32", "uint64", "intp", "uintp", "complex64", "complex128", "generic", "number", "integer",
    "signedinteger", "unsignedinteger", "floating", "complexfloating",
    "newaxis", "inf", "nan", "pi", "e",
    "errstate", "broadcast_shapes",
})

_METHODS = ("forward", "backward")


def _numpy_aliases(tree):
    """Names the module binds to NumPy (``import numpy as np`` gives ``np``)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "numpy":
                    names.add(alias.asname or "numpy")
    return names


def _checked_code(tree, helpers):
    """(label, node) for the code held to the rule: every forward/backward of a class at any nesting depth
    (ops made by factory functions count too), the class-level attributes of those classes (a table of
    NumPy functions there would be called from forward), and the listed module-level helpers."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            methods = [item for item in node.body
                       if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name in _METHODS]
            for item in methods:
                yield f"{node.name}.{item.name}", item
            if methods:
                for item in node.body:
                    if isinstance(item, (ast.Assign, ast.AnnAssign)):
                        yield f"{node.name} (class attribute)", item
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in helpers:
            yield node.name, node


def violations(source, filename, helpers=()):
    """One message per ``np.<name>`` outside ``ALLOWED`` in the checked code of ``source``."""
    tree = ast.parse(source, filename)
    aliases = _numpy_aliases(tree)
    found = []
    for where, code in _checked_code(tree, helpers):
        for node in ast.walk(code):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr not in ALLOWED):
                found.append(f"{filename}:{node.lineno}: {where} uses {node.value.id}.{node.attr} "
                             f"(op math takes xp = array_module(...) from its inputs)")
    return found


def _read(name):
    return (OPS_DIR / name).read_text()


@pytest.mark.parametrize("name", CHECKED_FILES)
def test_forward_and_backward_take_the_array_module_from_their_inputs(name):
    found = violations(_read(name), name, HELPERS.get(name, ()))
    assert not found, "bare NumPy in op math:\n" + "\n".join(found)


@pytest.mark.parametrize("name", CHECKED_FILES)
def test_the_check_sees_the_ops_and_helpers(name):
    # Guards against the check passing vacuously (a renamed helper, a parse that finds no methods).
    tree = ast.parse(_read(name), name)
    helpers = HELPERS.get(name, ())
    methods = [where for where, _ in _checked_code(tree, helpers) if where.endswith(_METHODS)]
    assert len(methods) >= 5, f"{name}: only {methods} found"
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert set(helpers) <= defined, f"{name}: listed helpers not defined: {sorted(set(helpers) - defined)}"


@pytest.mark.parametrize("name", sorted(SMALL_FILES))
def test_small_files_take_the_array_module_from_their_inputs(name):
    found = violations(_read(name), name, HELPERS.get(name, ()))
    assert not found, "bare NumPy in op math:\n" + "\n".join(found)


@pytest.mark.parametrize("name", sorted(SMALL_FILES))
def test_the_check_sees_every_op_and_helper_of_the_small_files(name):
    tree = ast.parse(_read(name), name)
    helpers = HELPERS.get(name, ())
    methods = [where for where, _ in _checked_code(tree, helpers) if where.endswith(_METHODS)]
    assert len(methods) == SMALL_FILES[name], f"{name}: expected {SMALL_FILES[name]} methods, found {methods}"
    assert methods or helpers, f"{name}: nothing to check"
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert set(helpers) <= defined, f"{name}: listed helpers not defined: {sorted(set(helpers) - defined)}"


def test_the_check_reports_file_class_method_line_and_name():
    source = (
        "import numpy as np\n"
        "class Op:\n"
        "    def forward(ctx, a):\n"
        "        with np.errstate(over='ignore'):\n"
        "            return a.astype(np.float32) + np.inf\n"
        "    def backward(ctx, grad):\n"
        "        return np.exp(grad)\n"
        "def helper(x):\n"
        "    return np.where(x > 0, x, 0)\n"
        "def unchecked(x):\n"
        "    return np.zeros(3)\n"
        "def factory():\n"
        "    class Inner:\n"
        "        table = {2: np.log2}\n"
        "        def forward(ctx, a):\n"
        "            return np.sum(a)\n"
        "    return Inner\n"
    )
    found = violations(source, "fake.py", ("helper",))
    assert len(found) == 4
    assert "fake.py:14: Inner (class attribute) uses np.log2 (op math takes xp = array_module(...) from its inputs)" \
        in found
    assert any(msg.startswith("fake.py:7: Op.backward uses np.exp") for msg in found)
    assert any(msg.startswith("fake.py:16: Inner.forward uses np.sum") for msg in found)
    assert any(msg.startswith("fake.py:9: helper uses np.where") for msg in found)


def test_the_check_follows_other_numpy_aliases():
    source = "import numpy\nclass Op:\n    def forward(ctx, a):\n        return numpy.exp(a)\n"
    assert violations(source, "fake.py") == [
        "fake.py:4: Op.forward uses numpy.exp (op math takes xp = array_module(...) from its inputs)"
    ]


@pytest.mark.parametrize("arrays", [
    (np.zeros(3, np.float32),),
    (np.zeros((2, 2)), np.ones(2, np.int64)),
    (1.0,),
    (2, True),
    (np.float32(1.5), np.int64(3)),
    (np.zeros(2), 3.0, np.bool_(True), None),
    (3, np.arange(4)),
    (),
])
def test_array_module_is_numpy_for_numpy_arrays_scalars_and_mixtures(arrays):
    assert backend.array_module(*arrays) is np
