"""What the device suite (``pytest --somanet-device=standin``, see tests/conftest.py) runs and skips.

The suite reruns the op, module and autograd tests with the somanet side of each PyTorch comparison on
the stand-in device. Only test modules that use reference.py's device-aware helpers take part: the others
would repeat the CPU run unchanged. A test listed in ``HOST_ONLY`` is skipped there with its reason: every
entry is a test artefact (the test itself reads a device tensor as NumPy, or builds a host tensor to mix
in), never an op that falls back to NumPy, which is a bug to fix in the op. ``DEVICE_GAPS`` would list
product gaps not fixed yet, as strict expected failures (none today).
"""
import reference

#: Helpers of reference.py that place somanet tensors on the suite's device.
_HELPERS = (reference.compare, reference.lib_tensor, reference.compare_modules, reference.optimizer_pair,
            reference.on_device)

_CPU_KERNEL = ("asserts that a CPU kernel's thread split or cache blocking ran; on a device the reference array "
               "code runs by design")
_HOST_INPUT_AFTER = ("calls the module, which compare_modules moved to the device, with host inputs afterwards "
                     "(PyTorch refuses that too)")
_READS_AS_NUMPY = "reads a device tensor's array as NumPy (PyTorch's .numpy() refuses a CUDA tensor too)"
_HOST_INDEX = ("builds a tensor argument (an index or a weight) on the host outside the compared function "
               "(PyTorch wants it on the input's device too)")
_CPU_MASK = ("passes the causal mask that generate_square_subsequent_mask makes on the CPU (its default, as in "
             "PyTorch) to a module on the device")
_SECOND_ORDER = ("builds its module, index, target or running statistics on the CPU inside the function while "
                 "lib_tensor puts the inputs on the device (these second-order checks do not run under "
                 "reference.device_scope)")

#: ``path::test`` (every parametrization) or a full node id -> why the test cannot run on a device (skipped).
#: Every entry is a test artefact; an op that falls back to NumPy is fixed in the op instead.
HOST_ONLY = {
    'tests/nn/test_conv.py::test_cache_blocks_in_transposed_convolutions_threads_and_float64': _CPU_KERNEL,
    'tests/nn/test_conv.py::test_cache_blocks_match_torch': _CPU_KERNEL,
    'tests/nn/test_conv.py::test_conv2d_split_across_threads_matches_torch': _CPU_KERNEL,
    'tests/nn/test_conv.py::test_conv_transpose_and_conv1d_split_across_threads_match_torch': _CPU_KERNEL,
    'tests/nn/test_recurrent.py::test_batch_blocks_match_torch': _CPU_KERNEL,
    'tests/nn/test_winograd.py::test_cache_blocks_match_torch': _CPU_KERNEL,
    "tests/nn/test_attention.py::test_mha_causal_hint_and_need_weights_false_match_torch": _HOST_INPUT_AFTER,
    "tests/nn/test_conv.py::test_conv_transpose_modules": _HOST_INPUT_AFTER,
    "tests/nn/test_conv.py::test_small_cnn_with_norm_layers_train_and_eval": _READS_AS_NUMPY,
    "tests/nn/test_embedding.py::test_embedding_max_norm_renormalises_looked_up_rows_like_torch": _READS_AS_NUMPY,
    "tests/nn/test_loss.py::test_bce_clamps_log_at_minus_100_like_torch": _READS_AS_NUMPY,
    "tests/nn/test_embedding.py::test_embedding_functional_gradcheck_and_torch": _HOST_INDEX,
    "tests/nn/test_pool.py::test_max_unpool2d_matches_torch": _HOST_INDEX,
    "tests/nn/test_loss.py::test_branch_free_losses_match_torch_elementwise[0.5-binary_cross_entropy_with_logits]":
        _HOST_INDEX,
    "tests/nn/test_loss.py::test_branch_free_losses_match_torch_elementwise[2.0-binary_cross_entropy_with_logits]":
        _HOST_INDEX,
    "tests/nn/test_transformer.py::test_encoder_stack_with_final_norm_and_causal_mask": _CPU_MASK,
    "tests/nn/test_transformer.py::test_transformer_matches_torch_with_every_mask": _CPU_MASK,
    "tests/autograd/test_higher_order.py::test_elementwise": _SECOND_ORDER,
    "tests/autograd/test_higher_order.py::test_shape_and_index": _SECOND_ORDER,
    "tests/autograd/test_higher_order.py::test_norm": _SECOND_ORDER,
    "tests/autograd/test_higher_order.py::test_loss": _SECOND_ORDER,
    "tests/autograd/test_higher_order.py::test_embedding": _SECOND_ORDER,
    "tests/autograd/test_higher_order.py::test_more_ops": _SECOND_ORDER,
    "tests/autograd/test_higher_order.py::test_embedding_scaled_by_frequency": _SECOND_ORDER,
    "tests/autograd/test_higher_order.py::test_multihead_attention_module": _SECOND_ORDER,
    "tests/autograd/test_higher_order.py::test_multihead_attention_with_bias_kv_and_kdim": _SECOND_ORDER,
    "tests/autograd/test_higher_order_recurrent.py::test_recurrent_layer": _SECOND_ORDER,
    "tests/autograd/test_higher_order_recurrent.py::test_recurrent_layer_packed": _SECOND_ORDER,
    "tests/autograd/test_higher_order_recurrent.py::test_packing_helpers": _SECOND_ORDER,
    "tests/autograd/test_higher_order_recurrent.py::test_recurrent_layer_on_the_reference_kernel": _SECOND_ORDER,
    "tests/autograd/test_higher_order_recurrent.py::test_recurrent_layer_in_batch_blocks": _SECOND_ORDER,
    "tests/autograd/test_higher_order_recurrent.py::test_cell": _SECOND_ORDER,
}

#: Node id -> the error it raises on the stand-in today: a product gap not fixed yet. Strict expected
#: failures: each turns into an error when it starts passing, so the entry must then be removed.
DEVICE_GAPS = {
}


def uses_reference_helpers(item):
    """Whether ``item``'s test module imports one of the device-aware helpers of reference.py."""
    module = getattr(item, "module", None)
    if module is None:
        return False
    names = vars(module)
    return any(names.get(f.__name__) is f for f in _HELPERS) or names.get("reference") is reference
