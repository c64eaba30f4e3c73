"""``somanet explain``: a heatmap of what an image classifier trained by ``somanet train`` looks at.

    somanet explain runs/transfer-digits-001 digit.png
    somanet explain runs/transfer-digits-001 digit.png --method gradcam --out digit-cam.png
    somanet explain runs/digits-mlp-001 samples.npy --method smoothgrad --target 3

The input is read as ``somanet predict`` reads it (an image file, or a .npy array of one or more samples).
The default target is the class the model predicts. Methods (``somanet.interpret``): 'saliency',
'smoothgrad', 'integrated-gradients' (the default; prints its completeness error), 'gradcam' and
'gradcam++' (convolutional models; ``--layer`` names the layer, by default the last one with a spatial
feature map). Writes one PNG per sample (``--out FILE``; with several samples FILE-000.png, ...) and prints
where. Exit status 2 on bad input, with one line on stderr.
"""
import os

import numpy as np

__all__ = ["add_parser", "cmd_explain", "METHODS", "MAX_SAMPLES"]

#: The ``--method`` choices.
METHODS = ("saliency", "smoothgrad", "integrated-gradients", "gradcam", "gradcam++")
#: The most samples one call explains (one PNG each).
MAX_SAMPLES = 100


def add_parser(sub):
    """Register ``explain`` on the ``somanet`` command's subparsers."""
    from .main import _positive_int
    p = sub.add_parser("explain", help="heatmap of the input pixels a trained image classifier relies on",
                       description="Explain a trained classification run's prediction on an image or .npy input "
                                   "with an attribution method, drawn as a heatmap over the input (PNG).")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory made by 'somanet train'")
    p.add_argument("input", metavar="INPUT", help="an image (.png, .jpg, ...) or a .npy array of samples")
    p.add_argument("--method", choices=METHODS, default="integrated-gradients",
                   help="the attribution method (default: integrated-gradients)")
    p.add_argument("--target", type=int, metavar="CLASS", help="the class to explain (default: the predicted one)")
    p.add_argument("--out", metavar="FILE", help="the PNG to write (default: INPUT-METHOD.png in this folder)")
    p.add_argument("--layer", metavar="NAME", help="gradcam/gradcam++: the module to explain at, e.g. block3 "
                                                   "(default: the last one with a spatial feature map)")
    p.add_argument("--checkpoint", default="best", metavar="best|last|DIR")
    p.add_argument("--steps", type=_positive_int, default=50, metavar="N",
                   help="integrated-gradients: points on the path (default 50)")
    p.add_argument("--samples", type=_positive_int, default=25, metavar="N",
                   help="smoothgrad: noisy copies per input (default 25)")
    p.set_defaults(func=cmd_explain)
    return p


def _read_input(args, info, model):
    from .main import CLIError, _input_type, _read_input as read_input
    x = read_input(args.input, _input_type(args.input), info, model)
    if np.dtype(x.dtype).kind != "f":
        raise CLIError(f"explain needs floating-point inputs to differentiate; this model takes {x.dtype}")
    return x


def _feature_layer(model, x, name):
    """The module to run Grad-CAM at: ``name``, else the last one that returns a spatial (N, C, H, W) map."""
    from ..autograd.grad_mode import no_grad
    from ..autograd.tensor import Tensor
    from .main import CLIError
    modules = dict(model.named_modules())
    if name is not None:
        if name not in modules or not name:
            known = [n for n in modules if n]
            raise CLIError(f"--layer {name!r} is not a module of this run's model ({type(model).__name__}); its "
                           f"modules are {', '.join(known[:30])}{' ...' if len(known) > 30 else ''}")
        return name, modules[name]
    found = []

    def keep(label):
        def hook(module, args, out):
            if isinstance(out, Tensor) and out.ndim == 4 and out.shape[2] * out.shape[3] > 1:
                found.append(label)
        return hook

    handles = [m.register_forward_hook(keep(n)) for n, m in modules.items() if n]
    try:
        with no_grad():
            model(Tensor(x[:1]))
    finally:
        for h in handles:
            h.remove()
    if not found:
        raise CLIError(f"gradcam needs a convolutional model; this run's model ({type(model).__name__}) has no layer "
                       f"with a spatial feature map: use --method saliency, smoothgrad or integrated-gradients")
    return found[-1], modules[found[-1]]


def _out_paths(args, n):
    from .main import CLIError
    out = args.out
    if out is None:
        stem = os.path.splitext(os.path.basename(args.input))[0]
        out = f"{stem}-{args.method.replace('+', 'p')}.png"
    if not out.lower().endswith(".png"):
        raise CLIError(f"--out {out}: the heatmap is a PNG; give a file name ending in .png")
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise CLIError(f"--out {out}: the folder {folder} does not exist")
    if os.path.isdir(out):
        raise CLIError(f"--out {out} is a directory; give a file name ending in .png")
    if n == 1:
        return [out]
    stem = out[:-4]
    return [f"{stem}-{i:03d}.png" for i in range(n)]


def cmd_explain(args):
    """Run ``somanet explain`` (see the module docstring)."""
    from ..autograd.tensor import Tensor
    from ..autograd.grad_mode import no_grad
    from .. import interpret
    from ..ops.reduce import softmax
    from .main import CLIError, _model_from_run
    cfg, info, model, _ = _model_from_run(args)
    if cfg.get("task") != "classification" or not info.num_classes:
        raise CLIError(f"explain works on classification runs; {args.run_dir} is a {cfg.get('task')} run")
    if hasattr(model, "generator") and hasattr(model, "discriminator"):
        raise CLIError(f"explain works on classifiers; {args.run_dir} holds a generative model")
    model.eval()
    x = _read_input(args, info, model)
    n, classes = len(x), info.num_classes
    if n > MAX_SAMPLES:
        raise CLIError(f"{args.input} holds {n} samples; explain writes one heatmap per sample and takes at most "
                       f"{MAX_SAMPLES}: save the ones to explain in a smaller .npy file")
    if args.target is not None and not 0 <= args.target < classes:
        raise CLIError(f"--target {args.target} is out of range: this model has {classes} classes (0 to {classes - 1})")
    paths = _out_paths(args, n)
    with no_grad():
        probs = softmax(Tensor(np.asarray(model(Tensor(x)).array, dtype=np.float64)), dim=-1).array
    pred = probs.argmax(axis=1)
    target = np.full(n, args.target) if args.target is not None else pred
    delta = None
    layer_name = None
    if args.method == "saliency":
        attr = interpret.Saliency(model).attribute(x, target=target)
    elif args.method == "smoothgrad":
        attr = interpret.SmoothGrad(model).attribute(x, target=target, nt_samples=args.samples,
                                                     nt_samples_batch_size=max(1, 64 // n))
    elif args.method == "integrated-gradients":
        attr, delta = interpret.IntegratedGradients(model).attribute(
            x, target=target, n_steps=args.steps, internal_batch_size=256, return_convergence_delta=True)
    else:
        if x.ndim != 4:
            raise CLIError(f"{args.method} needs image inputs (N, C, H, W); this model takes samples of shape "
                           f"{tuple(info.input_shape)}: use --method saliency, smoothgrad or integrated-gradients")
        layer_name, layer = _feature_layer(model, x, args.layer)
        cls = interpret.GradCAM if args.method == "gradcam" else interpret.GradCAMPlusPlus
        try:
            attr = cls(model, layer).attribute(x, target=target)
        except (ValueError, RuntimeError) as exc:
            raise CLIError(f"{args.method} at layer {layer_name!r}: {exc}") from None
    attr = np.asarray(attr.array)
    names = info.classes or [str(i) for i in range(classes)]
    shape = tuple(info.image_size) if info.image_size else None
    for i in range(n):
        a, img = attr[i], x[i]
        if shape is not None and a.size % (shape[0] * shape[1]) == 0 and a.ndim != 3:
            a, img = a.reshape(-1, *shape), img.reshape(-1, *shape)
        if a.ndim != 3:
            raise CLIError(f"explain draws image inputs; this model takes samples of shape {tuple(info.input_shape)}")
        sign = "positive" if args.method in ("gradcam", "gradcam++") else "absolute"
        title = f"{args.method}: class {names[target[i]]}"
        try:
            interpret.plot_image_heatmap(a, paths[i], image=img, sign=sign, title=title)
        except ImportError as exc:
            raise CLIError(str(exc)) from None
        line = (f"sample {i}: predicted {names[pred[i]]} (p={probs[i, pred[i]]:.3f}); explained class "
                f"{names[target[i]]} with {args.method}")
        if layer_name is not None:
            line += f" at layer {layer_name}"
        if delta is not None:
            line += f" (completeness error {float(delta.array[i]):+.2e})"
        print(line)
        print(f"Heatmap: {paths[i]}")
    return 0
