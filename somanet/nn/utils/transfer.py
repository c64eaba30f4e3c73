"""Transfer learning: freeze and unfreeze parts of a model, give its layers their own learning rates, and
read named intermediate outputs.

    freeze(model, up_to="encoder.layer.3")     # embeddings and the first four layers stop learning
    unfreeze(model, "encoder.layer.3")         # gradual unfreezing, one block at a time
    optimizer = AdamW(layerwise_lr_groups(model, base_lr=2e-5, decay=0.9))
    features = create_feature_extractor(resnet, {"layer3": "mid", "layer4": "top"})(images)

Frozen parameters get ``requires_grad=False``; their gradients are never computed. Batch-norm layers
inside a frozen part stay in eval mode even when ``model.train()`` is called (a forward pre-hook puts
them back before every call), so their running statistics, learnt on the original data, are neither
updated nor replaced by batch statistics while the rest trains.
"""
from collections import OrderedDict

from ..modules.container import ModuleList, Sequential
from ..modules.embedding import Embedding
from ..modules.module import Module
from ..modules.norm import _BatchNorm

__all__ = ["freeze", "unfreeze", "frozen_parameter_names", "trainable_parameter_names", "frozen_module_names",
           "param_groups", "layerwise_lr_groups", "layer_groups", "create_feature_extractor", "FeatureExtractor",
           "feature_node_names"]

_BN_HOOK = "_frozen_bn_hook"


def _check_module(model, who):
    if not isinstance(model, Module):
        raise TypeError(f"{who}: expected a somanet nn.Module, got {type(model).__name__}")


def _resolve(model, name, who):
    """The submodule called ``name``, or an error naming the closest existing names."""
    names = [n for n, _ in model.named_modules() if n]
    if name in names:
        return model.get_submodule(name)
    parent = name.rpartition(".")[0]
    near = [n for n in names if n.rpartition(".")[0] == parent] or [n for n in names if "." not in n]
    raise KeyError(f"{who}: {type(model).__name__} has no submodule {name!r}; modules at that level: "
                   f"{', '.join(near[:30])}" + (" ..." if len(near) > 30 else ""))


def _under(name, prefix):
    return prefix == "" or name == prefix or name.startswith(prefix + ".")


def _region(model, names, up_to, who):
    """The module names (pre-order) a freeze/unfreeze applies to."""
    modules = [n for n, _ in model.named_modules()]
    if up_to is not None:
        if names:
            raise ValueError(f"{who}: pass module names or up_to, not both")
        _resolve(model, up_to, who)
        last = max(i for i, n in enumerate(modules) if _under(n, up_to))
        ancestors = {up_to.rsplit(".", k)[0] for k in range(1, up_to.count(".") + 1)} | {""}
        # The module itself, everything registered before it, and the own parameters of its ancestors
        # registered before it (a ViT's class token and positions come before its encoder).
        return [n for n in modules[:last + 1] if n not in ancestors], ancestors
    if not names:
        return modules, set()
    for n in names:
        _resolve(model, n, who)
    return [m for m in modules if any(_under(m, n) for n in names)], set()


def _keep_eval(module, args):
    object.__setattr__(module, "training", False)


def _set_bn_eval(module, frozen):
    handle = module.__dict__.pop(_BN_HOOK, None)
    if handle is not None:
        handle.remove()
    if frozen:
        module.__dict__[_BN_HOOK] = module.register_forward_pre_hook(_keep_eval)
        object.__setattr__(module, "training", False)


def _apply(model, names, up_to, requires_grad, bn_eval, who):
    _check_module(model, who)
    region, ancestors = _region(model, list(names), up_to, who)
    changed = []
    for mod_name in region:
        module = model.get_submodule(mod_name)
        for p_name, p in module._parameters.items():
            if p is None:
                continue
            p.requires_grad_(requires_grad)
            if not requires_grad:
                p.grad = None
            changed.append(f"{mod_name}.{p_name}" if mod_name else p_name)
        if isinstance(module, _BatchNorm):
            _set_bn_eval(module, frozen=not requires_grad and bn_eval)
            if requires_grad:
                object.__setattr__(module, "training", model.training)
    if up_to is not None:
        # Parameters held directly by an ancestor and registered before the target count as "before" it.
        order = [n for n, _ in model.named_parameters()]
        last = max((i for i, n in enumerate(order) if _under(n.rpartition(".")[0], up_to)), default=-1)
        for i, n in enumerate(order[:last + 1]):
            if n.rpartition(".")[0] in ancestors:
                p = model.get_parameter(n)
                p.requires_grad_(requires_grad)
                if not requires_grad:
                    p.grad = None
                changed.append(n)
    return changed


def freeze(model, *names, up_to=None, bn_eval=True):
    """Stop parameters from learning: ``requires_grad=False`` and their gradients cleared.

    ``freeze(model)`` freezes everything; ``freeze(model, "embeddings", "encoder.layer.0")`` the named
    submodules; ``freeze(model, up_to="layer3")`` the named submodule and every parameter registered
    before it (the usual "freeze the bottom of the network"). With ``bn_eval`` (the default) the batch-norm
    layers in the frozen part are kept in eval mode until unfrozen, whatever ``model.train()`` says.

    Returns the model. An unknown name raises ``KeyError`` listing the names at that level.
    """
    _apply(model, names, up_to, False, bn_eval, "freeze()")
    return model


def unfreeze(model, *names, up_to=None):
    """Undo ``freeze`` for everything, for the named submodules, or ``up_to`` a submodule (same rules as
    ``freeze``); batch-norm layers in that part follow ``model.train()``/``eval()`` again. Returns the model."""
    _apply(model, names, up_to, True, True, "unfreeze()")
    return model


def frozen_parameter_names(model):
    """Names of the parameters that do not require grad."""
    return [n for n, p in model.named_parameters() if not p.requires_grad]


def trainable_parameter_names(model):
    """Names of the parameters that require grad."""
    return [n for n, p in model.named_parameters() if p.requires_grad]


def frozen_module_names(model):
    """The largest submodules whose parameters are all frozen (e.g. ``['embeddings', 'encoder.layer.0']``),
    parents before children, a frozen module's children left out. Modules without parameters are skipped."""
    out = []
    for name, module in model.named_modules():
        if not name or any(_under(name, f) for f in out):
            continue
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            out.append(name)
    return out


# =========================================================================== parameter groups
def param_groups(model, lrs, *, default_lr=None, include_frozen=False, **hyper):
    """Parameter groups by name prefix: ``param_groups(model, {"classifier": 1e-3, "bert": 2e-5})``.

    Each parameter joins the group of the longest prefix (a module name) it lies under; parameters under
    none take ``default_lr`` (an error when it is None and some are left). Frozen parameters are left
    out unless ``include_frozen``. ``hyper`` (e.g. ``weight_decay=0.01``) is copied into every group.
    Returns a list of dicts ``{"params", "lr", "name"}`` for any optimizer.
    """
    _check_module(model, "param_groups()")
    for prefix in lrs:
        if prefix:
            _resolve(model, prefix, "param_groups()")
    prefixes = sorted(lrs, key=len, reverse=True)
    groups, left = OrderedDict(), []
    for name, p in model.named_parameters():
        if not (p.requires_grad or include_frozen):
            continue
        prefix = next((pre for pre in prefixes if _under(name.rpartition(".")[0], pre) or name == pre), None)
        if prefix is None:
            if default_lr is None:
                left.append(name)
                continue
            groups.setdefault(None, []).append(p)
        else:
            groups.setdefault(prefix, []).append(p)
    if left:
        raise ValueError(f"param_groups(): no prefix covers {', '.join(left[:20])}" + (" ..." if len(left) > 20 else "")
                         + "; add them or pass default_lr")
    return [dict(params=ps, lr=(default_lr if key is None else lrs[key]), name=key or "default", **hyper)
            for key, ps in groups.items()]


def _stacks(model):
    """The ModuleList/Sequential containers holding at least two modules of one type: (name, children)."""
    out = []
    for name, module in model.named_modules():
        if isinstance(module, (ModuleList, Sequential)):
            kids = list(module.named_children())
            if len(kids) >= 2 and len({type(m) for _, m in kids}) == 1:
                out.append((name, [f"{name}.{k}" if name else k for k, _ in kids]))
    return out


def layer_groups(model):
    """The model's layers from the input up, as lists of module names (``layerwise_lr_groups`` uses them).

    The longest stack of identical blocks (BERT's ``encoder.layer``, a ViT's ``encoder.layers``) gives one
    layer per block, everything registered before it is the bottom layer (embeddings) and everything after
    it the top (pooler, final norm, head). Without a stack of at least three blocks holding at least half of
    the parameters (embedding tables aside), as in a ResNet, each top-level child with parameters is a layer.
    """
    _check_module(model, "layer_groups()")
    # Embedding tables are left out of the count: a BERT's vocabulary can outweigh its layers.
    tables = {id(m.weight) for m in model.modules() if isinstance(m, Embedding)}
    total = sum(p.array.size for p in model.parameters() if id(p) not in tables)
    best = None
    for name, blocks in _stacks(model):
        size = sum(p.array.size for b in blocks for p in model.get_submodule(b).parameters() if id(p) not in tables)
        key = (len(blocks), size)
        if len(blocks) >= 3 and size * 2 >= total and (best is None or key > best[0]):
            best = (key, name, blocks)
    names = [n for n, _ in model.named_parameters()]
    if best is None:
        layers = []
        for child, module in model.named_children():
            if any(True for _ in module.parameters()):
                layers.append([child])
        own = [n for n in names if "." not in n]
        if own:  # parameters held by the model itself join the first layer
            layers = [own + (layers[0] if layers else [])] + layers[1:]
        return layers
    _, stack, blocks = best
    bottom, top = [], []
    first = next(i for i, m in enumerate(names) if _under(m.rpartition(".")[0], stack))
    for i, n in enumerate(names):
        if not _under(n.rpartition(".")[0], stack):
            (bottom if i < first else top).append(n)
    layers = ([bottom] if bottom else []) + [[b] for b in blocks] + ([top] if top else [])
    return layers


def layerwise_lr_groups(model, base_lr, decay=0.9, *, layers=None, weight_decay=None,
                        no_decay=("bias", "LayerNorm.weight", "norm.weight", "norm1.weight", "norm2.weight",
                                  "bn1.weight", "bn2.weight", "bn3.weight"), include_frozen=False):
    """Discriminative learning rates: the top layer learns at ``base_lr``, each layer below at ``decay``
    times the one above (layer-wise learning-rate decay, as used to fine-tune BERT and ViT).

    Args:
        model: the model.
        base_lr: the learning rate of the top layer (the head).
        decay: the factor per layer going down (1.0: one learning rate for all).
        layers: the layers from the input up, each a module name or parameter name or a list of them;
            default ``layer_groups(model)``.
        weight_decay: if given, every group is split in two: with this weight decay, and without it for
            names ending in one of ``no_decay`` (biases and normalisation weights).
        include_frozen: also list frozen parameters (by default they are left out, so the optimizer
            skips them; add them later with ``optimizer.add_param_group`` when unfreezing).

    Returns:
        a list of param-group dicts (``params``, ``lr``, ``name``, and ``weight_decay`` when given) for
        any optimizer, bottom layer first.
    """
    _check_module(model, "layerwise_lr_groups()")
    if not (isinstance(decay, (int, float)) and 0 < decay <= 1):
        raise ValueError(f"layerwise_lr_groups(): decay must be in (0, 1], got {decay!r}")
    layers = layer_groups(model) if layers is None else [[x] if isinstance(x, str) else list(x) for x in layers]
    params = OrderedDict(model.named_parameters())
    owner = {}
    for depth, layer in enumerate(layers):
        for item in layer:
            hits = [n for n in params if n == item or _under(n.rpartition(".")[0], item)]
            if not hits:
                raise KeyError(f"layerwise_lr_groups(): {item!r} names no parameter or module of "
                               f"{type(model).__name__}")
            for n in hits:
                owner.setdefault(n, depth)
    left = [n for n in params if n not in owner]
    if left:
        raise ValueError(f"layerwise_lr_groups(): parameters in no layer: {', '.join(left[:20])}"
                         + (" ..." if len(left) > 20 else ""))
    top = len(layers) - 1
    groups = []
    for depth, layer in enumerate(layers):
        lr = base_lr * decay ** (top - depth)
        members = [(n, p) for n, p in params.items() if owner[n] == depth and (p.requires_grad or include_frozen)]
        label = layer[0] if len(layer) == 1 else f"{layer[0]}..{layer[-1]}" if depth not in (0, top) else \
            ("bottom" if depth == 0 else "top")
        if weight_decay is None:
            if members:
                groups.append({"params": [p for _, p in members], "lr": lr, "name": label})
            continue
        plain = [p for n, p in members if not n.endswith(tuple(no_decay))]
        exempt = [p for n, p in members if n.endswith(tuple(no_decay))]
        if plain:
            groups.append({"params": plain, "lr": lr, "weight_decay": weight_decay, "name": label})
        if exempt:
            groups.append({"params": exempt, "lr": lr, "weight_decay": 0.0, "name": label + " (no decay)"})
    return groups


# =========================================================================== feature extraction
class _Done(Exception):
    """Raised by the last hook a feature extractor needs: the rest of the forward pass is skipped."""


def feature_node_names(model):
    """The names ``create_feature_extractor`` accepts: every submodule of ``model``, in call-graph-free
    registration order."""
    return [n for n, _ in model.named_modules() if n]


class FeatureExtractor(Module):
    """Runs ``model`` and returns an ordered dict of the outputs of the requested submodules.

    Built by ``create_feature_extractor``. The outputs keep their graph, so a loss on them trains the
    model (fine-tuning through features); with ``stop_early`` (the default) the forward pass stops as
    soon as every requested output exists, so layers after the last one never run. A submodule called
    several times in one pass reports its first output with ``stop_early``, its last without.
    """

    def __init__(self, model, return_nodes, stop_early=True):
        super().__init__()
        _check_module(model, "create_feature_extractor()")
        if isinstance(return_nodes, (list, tuple)):
            return_nodes = OrderedDict((n, n) for n in return_nodes)
        elif isinstance(return_nodes, dict):
            return_nodes = OrderedDict(return_nodes)
        else:
            raise TypeError(f"create_feature_extractor(): return_nodes must be a list of module names or a dict "
                            f"{{module name: output name}}, got {type(return_nodes).__name__}")
        if not return_nodes:
            raise ValueError("create_feature_extractor(): return_nodes is empty")
        for node in return_nodes:
            _resolve(model, node, "create_feature_extractor()")
        outs = list(return_nodes.values())
        if len(set(outs)) != len(outs):
            raise ValueError(f"create_feature_extractor(): two nodes share an output name: {outs}")
        self.model = model
        self.return_nodes = return_nodes
        self.stop_early = stop_early

    def forward(self, *args, **kwargs):
        captured = OrderedDict()
        handles = []
        wanted = len(self.return_nodes)
        # The last node to finish in a forward pass decides when to stop: an outer module finishes after
        # its children, so stopping is safe only once every requested module has returned.

        def make_hook(key):
            def hook(module, inputs, output):
                captured[key] = output
                if self.stop_early and len(captured) == wanted:
                    raise _Done
            return hook

        for node, key in self.return_nodes.items():
            handles.append(self.model.get_submodule(node).register_forward_hook(make_hook(key)))
        try:
            self.model(*args, **kwargs)
        except _Done:
            pass
        finally:
            for h in handles:
                h.remove()
        missing = [k for k in self.return_nodes.values() if k not in captured]
        if missing:
            names = [n for n, k in self.return_nodes.items() if k in missing]
            raise RuntimeError(f"FeatureExtractor: {', '.join(names)} did not run in the forward pass of "
                               f"{type(self.model).__name__}")
        return OrderedDict((k, captured[k]) for k in self.return_nodes.values())

    def extra_repr(self):
        return "return_nodes=" + ", ".join(f"{n} -> {k}" if n != k else n for n, k in self.return_nodes.items())


def create_feature_extractor(model, return_nodes, stop_early=True):
    """A module returning named intermediate outputs of ``model``, as torchvision's function of that name.

    ``return_nodes``: a list of submodule names, or a dict ``{submodule name: output name}``. The module
    shares ``model``'s parameters (nothing is copied) and is implemented with forward hooks that exist
    only during its own calls, so ``model`` itself is unchanged.

    >>> extractor = create_feature_extractor(resnet18(), {"layer2": "mid", "avgpool": "pooled"})
    >>> feats = extractor(somanet.randn(1, 3, 64, 64))        # doctest: +SKIP
    >>> feats["mid"].shape, feats["pooled"].shape             # doctest: +SKIP
    ((1, 128, 8, 8), (1, 512, 1, 1))
    """
    return FeatureExtractor(model, return_nodes, stop_early=stop_early)
