"""The PyTorch API that typical training and model code calls, and where somanet stands on each name.

``IMPLEMENTED`` lists torch functions (``f``: ``torch.name``) and Tensor methods (``m``: ``x.name``) that
somanet provides under the same name; ``REFUSED`` lists the ones it declines, which resolve to functions
(and Tensor methods) that raise ``NotImplementedError("somanet does not implement torch.NAME yet")``.
The values, dtypes and gradients of the implemented ones are checked against PyTorch in the op tests
(``test_ops_pointwise``, ``test_ops_matrix``, ``test_ops_statistics``, ``test_ops_layout``,
``test_tensor_api``, ``test_sparse``, ``test_linalg_module`` and the older op test files).
"""
import pytest

import somanet
from reference import torch

IMPLEMENTED = """
    tensor:f as_tensor:f from_numpy:f zeros:f ones:f empty:f full:f zeros_like:f ones_like:f empty_like:f
    full_like:f arange:f linspace:f logspace:f eye:f rand:f randn:f randint:f randperm:f rand_like:f
    randn_like:f randint_like:f normal:f bernoulli:fm multinomial:fm poisson:f tril_indices:f triu_indices:f
    meshgrid:f cartesian_prod:f combinations:f abs:fm absolute:fm neg:fm negative:fm positive:fm exp:fm exp2:fm
    log:fm log2:fm log10:fm log1p:fm expm1:fm sqrt:fm rsqrt:fm square:fm pow:fm float_power:fm sin:fm cos:fm
    tan:fm asin:fm acos:fm atan:fm atan2:fm arcsin:fm arccos:fm arctan:fm arctan2:fm sinh:fm cosh:fm tanh:fm
    asinh:fm acosh:fm atanh:fm arcsinh:fm arccosh:fm arctanh:fm sigmoid:fm erf:fm erfc:fm erfinv:fm lgamma:fm
    digamma:fm polygamma:fm mvlgamma:fm floor:fm ceil:fm round:fm trunc:fm fix:fm frac:fm sign:fm sgn:fm
    signbit:fm reciprocal:fm clamp:fm clip:fm clamp_min:fm clamp_max:fm lerp:fm logaddexp:fm logaddexp2:fm
    hypot:fm logit:fm xlogy:fm add:fm sub:fm subtract:fm mul:fm multiply:fm div:fm divide:fm true_divide:fm
    floor_divide:fm remainder:fm fmod:fm maximum:fm minimum:fm fmax:fm fmin:fm copysign:fm deg2rad:fm rad2deg:fm
    sinc:fm heaviside:fm gcd:fm lcm:fm nan_to_num:fm addcmul:fm addcdiv:fm softmax:fm log_softmax:fm relu:fm
    conj:fm real:fm eq:fm ne:fm lt:fm le:fm gt:fm ge:fm greater:fm less:fm greater_equal:fm less_equal:fm
    not_equal:fm equal:fm isclose:fm allclose:fm isnan:fm isinf:fm isfinite:fm isposinf:fm isneginf:fm isreal:fm
    where:fm logical_and:fm logical_or:fm logical_not:fm logical_xor:fm bitwise_and:fm bitwise_or:fm
    bitwise_xor:fm bitwise_not:fm bitwise_left_shift:fm bitwise_right_shift:fm sum:fm mean:fm prod:fm std:fm
    var:fm std_mean:f var_mean:f max:fm min:fm amax:fm amin:fm aminmax:fm argmax:fm argmin:fm all:fm any:fm
    count_nonzero:fm logsumexp:fm cumsum:fm cumprod:fm cummax:fm cummin:fm logcumsumexp:fm norm:fm dist:fm
    nansum:fm nanmean:fm median:fm nanmedian:fm mode:fm kthvalue:fm quantile:fm nanquantile:fm sort:fm
    argsort:fm topk:fm msort:fm unique:fm unique_consecutive:fm bincount:fm histc:fm histogram:fm bucketize:f
    searchsorted:f diff:fm cat:f concat:f concatenate:f stack:f hstack:f vstack:f dstack:f column_stack:f
    row_stack:f split:fm chunk:fm tensor_split:fm hsplit:fm vsplit:fm dsplit:fm unbind:fm reshape:fm flatten:fm
    unflatten:fm squeeze:fm unsqueeze:fm permute:fm transpose:fm swapaxes:fm swapdims:fm t:fm movedim:fm
    moveaxis:fm flip:fm fliplr:fm flipud:fm rot90:fm roll:fm narrow:fm select:fm index_select:fm
    masked_select:fm gather:fm scatter:fm scatter_add:fm scatter_reduce:fm take:fm take_along_dim:fm tile:fm
    repeat_interleave:fm broadcast_to:fm broadcast_tensors:f broadcast_shapes:f atleast_1d:f atleast_2d:f
    atleast_3d:f tril:fm triu:fm diag:fm diag_embed:fm diagonal:fm diagflat:fm block_diag:f nonzero:fm
    argwhere:fm masked_fill:fm index_add:fm index_copy:fm index_fill:fm index_put:fm clone:fm matmul:fm mm:fm
    bmm:fm mv:fm dot:fm vdot:fm inner:fm einsum:f outer:fm ger:fm addmm:fm addbmm:fm baddbmm:fm addmv:fm addr:fm
    trace:fm kron:fm cross:fm det:fm logdet:fm slogdet:fm inverse:fm pinverse:fm cholesky:fm cdist:f tensordot:f
    chain_matmul:f matrix_power:fm matrix_exp:fm cosine_similarity:f pairwise_distance:f cov:fm corrcoef:fm
    vander:f is_tensor:f is_floating_point:fm is_complex:fm is_nonzero:fm is_storage:f numel:fm result_type:f
    promote_types:f can_cast:f finfo:f iinfo:f typename:f get_default_dtype:f set_default_dtype:f
    set_printoptions:f manual_seed:f seed:f initial_seed:f get_rng_state:f set_rng_state:f Generator:f no_grad:f
    enable_grad:f set_grad_enabled:f is_grad_enabled:f inference_mode:f save:f load:f compile:f device:fm
    sparse_coo_tensor:f spmm:f float32:f float64:f float16:f int8:f int16:f int32:f int64:f uint8:f bool:fm
    half:fm float:fm double:fm long:fm int:fm FloatTensor:f DoubleTensor:f HalfTensor:f LongTensor:f IntTensor:f
    ShortTensor:f ByteTensor:f CharTensor:f BoolTensor:f Tensor:f get_num_threads:f set_num_threads:f angle:fm
    cholesky_solve:fm cholesky_inverse:fm triangular_solve:fm new_zeros:m new_ones:m new_full:m new_empty:m
    new_tensor:m type:m type_as:m to:m byte:m char:m short:m cpu:m cuda:m numpy:m tolist:m item:m detach:m
    detach_:m contiguous:m view:m view_as:m reshape_as:m expand:m expand_as:m repeat:m size:m dim:m ndimension:m
    nelement:m element_size:m requires_grad_:m zero_:m fill_:m copy_:m uniform_:m normal_:m add_:m sub_:m mul_:m
    div_:m clamp_:m masked_fill_:m scatter_:m scatter_add_:m index_put_:m index_add_:m index_fill_:m
    index_copy_:m backward:m register_hook:m retain_grad:m is_contiguous:m stride:m data_ptr:m storage_offset:m
    apply_:m map_:m pin_memory:m share_memory_:m is_shared:m is_pinned:m __format__:m to_sparse:m to_dense:m
    coalesce:m indices:m values:m unfold:m exponential_:m random_:m bernoulli_:m geometric_:m log_normal_:m
    cauchy_:m pow_:m exp_:m log_:m sqrt_:m abs_:m neg_:m sigmoid_:m tanh_:m relu_:m lerp_:m addcmul_:m
    addcdiv_:m fill_diagonal_:m tril_:m triu_:m floor_:m ceil_:m round_:m sign_:m reciprocal_:m squeeze_:m
    unsqueeze_:m t_:m transpose_:m resize_:m as_strided:m put_:m put:m masked_scatter:m masked_scatter_:m
    nan_to_num_:m clip_:m clamp_min_:m clamp_max_:m copysign_:m logical_not_:m bitwise_not_:m scatter_reduce_:m
    asin_:m atan2_:m erfinv_:m
"""

REFUSED = """
    stft:fm istft:fm view_as_real:f view_as_complex:f polar:f complex:f lu:fm lu_solve:fm lu_unpack:f
    svd_lowrank:f pca_lowrank:f lobpcg:f vmap:f quantize_per_tensor:f dequantize:fm from_dlpack:f
    sparse_csr_tensor:f sparse_csc_tensor:f geqrf:fm ormqr:fm histogramdd:f nonzero_static:fm
"""

LINALG = """
    norm vector_norm matrix_norm inv inv_ex det slogdet solve cholesky cholesky_ex eigh eigvalsh svd svdvals qr pinv
    matrix_rank matrix_power matrix_exp multi_dot cross diagonal vecdot lstsq matmul vander
"""

LINALG_REFUSED = "eig eigvals lu lu_factor lu_solve solve_triangular householder_product tensorinv tensorsolve"


def _entries(text):
    return [tuple(item.split(":")) for item in text.split()]


IMPLEMENTED_ENTRIES = _entries(IMPLEMENTED)
REFUSED_ENTRIES = _entries(REFUSED)


def test_the_list_has_no_repeats_and_its_size():
    names = [n for n, _ in IMPLEMENTED_ENTRIES + REFUSED_ENTRIES]
    assert len(names) == len(set(names))
    assert len(IMPLEMENTED_ENTRIES) == 479
    assert len(REFUSED_ENTRIES) == 22


@pytest.mark.parametrize("name,kind", IMPLEMENTED_ENTRIES, ids=[n for n, _ in IMPLEMENTED_ENTRIES])
def test_implemented_name_is_present(name, kind):
    if "f" in kind:
        assert name in vars(somanet), f"somanet.{name} is missing"
    if "m" in kind:
        assert hasattr(somanet.Tensor, name), f"Tensor.{name} is missing"


@pytest.mark.parametrize("name,kind", REFUSED_ENTRIES, ids=[n for n, _ in REFUSED_ENTRIES])
def test_refused_name_raises_not_implemented(name, kind):
    if "f" in kind:
        fn = getattr(somanet, name)
        with pytest.raises(NotImplementedError, match=f"somanet does not implement torch.{name} yet"):
            fn(somanet.ones(2, 2))
    if "m" in kind:
        with pytest.raises(NotImplementedError, match=f"somanet does not implement torch.Tensor.{name} yet"):
            getattr(somanet.ones(2, 2), name)()


@pytest.mark.skipif(torch is None, reason="PyTorch (CPU build) is not installed")
@pytest.mark.parametrize("name,kind", IMPLEMENTED_ENTRIES + REFUSED_ENTRIES,
                         ids=[n for n, _ in IMPLEMENTED_ENTRIES + REFUSED_ENTRIES])
def test_the_list_says_where_pytorch_has_each_name(name, kind):
    # ``f`` and ``m`` are where code calls a name; PyTorch may have more (``torch.detach`` is rarely used).
    if "f" in kind:
        assert hasattr(torch, name), f"torch.{name}"
    if "m" in kind:
        assert hasattr(torch.Tensor, name), f"torch.Tensor.{name}"


def test_linalg_names():
    for name in LINALG.split():
        assert name in vars(somanet.linalg), f"somanet.linalg.{name} is missing"
        if torch is not None:
            assert hasattr(torch.linalg, name)
    for name in LINALG_REFUSED.split():
        with pytest.raises(NotImplementedError, match=f"torch.linalg.{name}"):
            getattr(somanet.linalg, name)(somanet.eye(2))


def test_unknown_names_still_raise_attribute_error():
    with pytest.raises(AttributeError):
        somanet.no_such_function_here  # noqa: B018
    assert not hasattr(somanet.Tensor, "no_such_method_here")
