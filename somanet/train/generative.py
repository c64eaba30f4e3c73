"""Quality measures for generative models of MNIST-like digits, sample grids, and the report that the
generative recipes write at the end of a run.

**MNIST-FID.** Inception-based FID needs ImageNet weights and 299x299 colour images; for 28x28 digits
the usual substitute is the same Frechet distance computed on the features of a small digit classifier.
somanet ships one: a ``LeNet5`` trained on MNIST images 0-7,999 (the training split of the MNIST test
file; ``train_mnist_classifier`` reproduces it, ``benchmarks/mnist_fid_classifier.py`` writes the file),
together with the mean and covariance of its features on the held-out images 8,000-9,999. So

    ``mnist_fid(images)`` = ``||mu_g - mu_r||^2 + tr(S_g + S_r - 2 (S_g S_r)^(1/2))``

where ``(mu, S)`` are the mean and covariance of the classifier's penultimate features (the 84 ReLU
outputs before the last layer) for the generated images (``g``) and the held-out real ones (``r``).
Everything works offline: the reference statistics are part of the package. Lower is better; two
disjoint halves of the held-out real images (8,000-8,999 vs 9,000-9,999) score the floor that finite
samples allow (see ``docs/generative.md``). Like every FID, the value depends on the number of images:
compare scores computed on the same number.

``mnist_quality`` adds the classifier's view of the samples: mean confidence (the top class
probability), the share of the ten classes predicted at least once, the entropy of the predicted-class
histogram divided by ``log 10`` (1 = every class equally often) and, for class-conditional samples,
how often the classifier agrees with the requested class.
"""
import math
import os

import numpy as np

from .callbacks import Callback

__all__ = ["MNIST_MEAN", "MNIST_STD", "frechet_distance", "gaussian_stats", "mnist_classifier", "classifier_outputs",
           "reference_stats", "mnist_fid", "mnist_quality", "train_mnist_classifier", "save_classifier",
           "save_image_grid", "image_grid", "GenerativeReport", "write_report", "recipe_callbacks", "CLASSIFIER_FILE"]

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
#: The shipped classifier and reference statistics, in ``somanet/models/weights/``.
CLASSIFIER_FILE = "mnist_lenet5_fid.safetensors"
_REF_PREFIX = "reference."


def _weights_path():
    from .. import models
    return os.path.join(os.path.dirname(os.path.abspath(models.__file__)), "weights", CLASSIFIER_FILE)


# --------------------------------------------------------------------------- the Frechet distance
def gaussian_stats(features):
    """Mean and covariance (``ddof=1``) of ``(N, D)`` features, in float64."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"gaussian_stats(): need (N, D) features with N >= 2, got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _psd_sqrt(sym):
    vals, vecs = np.linalg.eigh((sym + sym.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """The Frechet (2-Wasserstein) distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``:
    ``||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2))``.

    ``tr((S1 S2)^(1/2))`` is computed as the sum of the square roots of the eigenvalues of the symmetric
    positive semi-definite ``S1^(1/2) S2 S1^(1/2)``, which has the same eigenvalues as ``S1 S2``; unlike a
    general matrix square root of ``S1 S2`` this needs no complex arithmetic and stays accurate when
    the covariances are singular (features that are always zero).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"frechet_distance(): shapes do not match: mu {mu1.shape} / {mu2.shape}, "
                         f"sigma {s1.shape} / {s2.shape}")
    root1 = _psd_sqrt(s1)
    middle = root1 @ s2 @ root1
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(eig, 0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


# --------------------------------------------------------------------------- the classifier
def _read_file(path):
    try:
        import safetensors.numpy as st
    except ImportError as exc:
        raise ImportError("the MNIST quality measures read their classifier with safetensors: "
                          "pip install 'somanet[train]'") from exc
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing: the MNIST-FID classifier is part of the somanet package "
                                f"(rebuild it with benchmarks/mnist_fid_classifier.py)")
    return st.load_file(path)


_CACHE = {}


def mnist_classifier(path=None):
    """The shipped MNIST classifier (a ``LeNet5`` in eval mode), or the one saved at ``path``."""
    from ..models import LeNet5
    path = path or _weights_path()
    arrays = _read_file(path)
    model = LeNet5(num_classes=10)
    model.load_state_dict({k: v for k, v in arrays.items() if not k.startswith(_REF_PREFIX)})
    return model.eval()


def reference_stats(path=None):
    """``(mu, sigma, count)``: the classifier's feature statistics on MNIST images 8,000-9,999 (shipped)."""
    arrays = _read_file(path or _weights_path())
    return (arrays[_REF_PREFIX + "mean"].astype(np.float64), arrays[_REF_PREFIX + "cov"].astype(np.float64),
            int(arrays[_REF_PREFIX + "count"][0]))


def _default():
    if "model" not in _CACHE:
        _CACHE["model"] = mnist_classifier()
    return _CACHE["model"]


def _as_pixels(images):
    """Images as float32 ``(N, 1, 28, 28)`` pixels in [0, 1] (uint8 images are divided by 255)."""
    from ..autograd.tensor import Tensor
    arr = images.array if isinstance(images, Tensor) else np.asarray(images)
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / np.float32(255.0)
    arr = np.asarray(arr, dtype=np.float32)
    n = arr.shape[0] if arr.ndim else 0
    if arr.ndim < 2 or arr.size != n * 784:
        raise ValueError(f"expected N 28x28 single-channel images ((N, 28, 28), (N, 1, 28, 28) or (N, 784)), "
                         f"got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("the images hold NaN or infinite values")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(f"expected pixel values in [0, 1] (or uint8), got the range [{lo:.3g}, {hi:.3g}]; "
                         f"map [-1, 1] generator outputs with (x + 1) / 2")
    return np.clip(arr, 0.0, 1.0).reshape(n, 1, 28, 28)


def classifier_outputs(images, model=None, batch_size=500):
    """``(features, probabilities)`` of the classifier for ``images`` (pixels in [0, 1] or uint8):
    the ``(N, 84)`` penultimate features (float64) and the ``(N, 10)`` class probabilities."""
    from ..autograd import grad_mode
    from ..ops.creation import tensor
    model = model or _default()
    x = (_as_pixels(images) - np.float32(MNIST_MEAN)) / np.float32(MNIST_STD)
    head = list(model.classifier)
    feats, probs = [], []
    was_training = model.training
    model.eval()
    try:
        with grad_mode.no_grad():
            for i in range(0, len(x), batch_size):
                h = model.features(tensor(x[i:i + batch_size]))
                for layer in head[:-1]:
                    h = layer(h)
                logits = head[-1](h).array.astype(np.float64)
                feats.append(h.array.astype(np.float64))
                z = np.exp(logits - logits.max(axis=1, keepdims=True))
                probs.append(z / z.sum(axis=1, keepdims=True))
    finally:
        model.train(was_training)
    return np.concatenate(feats), np.concatenate(probs)


def _reference(reference, model):
    if reference is None:
        mu, sigma, _ = reference_stats()
        return mu, sigma
    if isinstance(reference, tuple) and len(reference) in (2, 3):
        return np.asarray(reference[0], np.float64), np.asarray(reference[1], np.float64)
    return gaussian_stats(classifier_outputs(reference, model)[0])


def mnist_fid(images, reference=None, model=None):
    """The MNIST-FID of ``images`` (``(N, 28, 28)``/``(N, 1, 28, 28)``, pixels in [0, 1] or uint8).

    ``reference``: None for the shipped statistics of MNIST images 8,000-9,999, real images, or a
    ``(mu, sigma)`` pair. ``model``: another classifier with ``LeNet5``'s layout.
    """
    feats, _ = classifier_outputs(images, model)
    mu, sigma = gaussian_stats(feats)
    return frechet_distance(mu, sigma, *_reference(reference, model))


def mnist_quality(images, labels=None, reference=None, model=None):
    """``mnist_fid`` and the classifier's view of ``images``: a dict with ``fid``, ``confidence`` (mean
    top-class probability), ``coverage`` (share of the 10 classes predicted at least once),
    ``class_entropy`` (entropy of the predicted-class histogram / log 10), ``count``, and with
    ``labels`` (the classes the images were generated for) ``label_accuracy``."""
    feats, probs = classifier_outputs(images, model)
    mu, sigma = gaussian_stats(feats)
    pred = probs.argmax(axis=1)
    hist = np.bincount(pred, minlength=10) / len(pred)
    nz = hist[hist > 0]
    out = {"fid": frechet_distance(mu, sigma, *_reference(reference, model)),
           "confidence": float(probs.max(axis=1).mean()), "coverage": float((hist > 0).mean()),
           "class_entropy": max(0.0, float(-(nz * np.log(nz)).sum() / math.log(10))), "count": int(len(pred))}
    if labels is not None:
        from ..autograd.tensor import Tensor
        lab = labels.array if isinstance(labels, Tensor) else np.asarray(labels)
        out["label_accuracy"] = float((pred == lab.reshape(-1)).mean())
    return out


# --------------------------------------------------------------------------- training the classifier
def _random_shift(batch, rng, background, max_shift=2):
    n = batch.shape[0]
    k = 2 * max_shift + 1
    padded = np.pad(batch, ((0, 0), (0, 0), (max_shift, max_shift), (max_shift, max_shift)),
                    constant_values=background)
    dy, dx = rng.integers(0, k, n), rng.integers(0, k, n)
    out = np.empty_like(batch)
    for i in range(k):
        for j in range(k):
            chosen = (dy == i) & (dx == j)
            out[chosen] = padded[chosen, :, i:i + 28, j:j + 28]
    return out


def train_mnist_classifier(images, labels, epochs=15, lr=2e-3, batch_size=64, seed=0, verbose=False):
    """Train the MNIST-FID classifier: ``LeNet5`` with Adam (``lr``, cosine decay per epoch), batches of
    64 and random shifts of up to 2 pixels; returns the model in eval mode.

    ``images``: ``(N, 28, 28)`` uint8 or [0, 1] pixels; the shipped weights come from MNIST images
    0-7,999 of the official test file with the defaults.
    """
    import somanet
    from .. import nn, optim
    from ..models import LeNet5
    x = (_as_pixels(images) - np.float32(MNIST_MEAN)) / np.float32(MNIST_STD)
    y = np.asarray(labels, dtype=np.int64)
    somanet.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = LeNet5(num_classes=10)
    opt = optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    background = float(x.min())
    for epoch in range(epochs):
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * epoch / epochs))
        order = rng.permutation(len(x))
        total = 0.0
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            opt.zero_grad()
            loss = loss_fn(model(somanet.tensor(_random_shift(x[idx], rng, background))), somanet.tensor(y[idx]))
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        if verbose:
            print(f"epoch {epoch + 1:2d}: train loss {total / len(x):.4f}", flush=True)
    return model.eval()


def save_classifier(model, reference_images, path):
    """Write ``model``'s weights and its feature statistics on ``reference_images`` to ``path``
    (the layout ``mnist_classifier`` and ``reference_stats`` read)."""
    import safetensors.numpy as st
    mu, sigma = gaussian_stats(classifier_outputs(reference_images, model)[0])
    arrays = {k: np.ascontiguousarray(v.array) for k, v in model.state_dict().items()}
    arrays[_REF_PREFIX + "mean"] = mu.astype(np.float64)
    arrays[_REF_PREFIX + "cov"] = sigma.astype(np.float64)
    arrays[_REF_PREFIX + "count"] = np.array([len(_as_pixels(reference_images))], dtype=np.int64)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    st.save_file(arrays, path)
    _CACHE.clear()
    return path


# --------------------------------------------------------------------------- sample grids
def image_grid(images, nrow=None, padding=2, pad_value=0.0):
    """Tile ``(N, C, H, W)`` / ``(N, H, W)`` images with values in [0, 1] into one ``(H', W')`` (grey)
    or ``(H', W', 3)`` array; ``nrow`` images per row (default: about a square)."""
    from ..autograd.tensor import Tensor
    arr = np.asarray(images.array if isinstance(images, Tensor) else images, dtype=np.float32)
    if arr.ndim == 3:
        arr = arr[:, None]
    if arr.ndim != 4 or arr.shape[1] not in (1, 3):
        raise ValueError(f"image_grid(): expected (N, 1 or 3, H, W) or (N, H, W) images, got shape {arr.shape}")
    from ..vision.utils import tile
    nrow = nrow or max(1, int(math.ceil(math.sqrt(arr.shape[0]))))
    grid = np.clip(tile(arr, nrow, padding, pad_value), 0.0, 1.0)
    return grid[0] if arr.shape[1] == 1 else grid.transpose(1, 2, 0)


def save_image_grid(images, path, nrow=None, padding=2, scale=1):
    """Write ``image_grid(images)`` as a PNG (Pillow if installed, else matplotlib); ``scale`` enlarges
    each pixel to ``scale x scale``. Returns the path."""
    grid = image_grid(images, nrow, padding)
    if scale > 1:
        grid = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
    pixels = np.round(grid * 255).astype(np.uint8)
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    try:
        from PIL import Image
        Image.fromarray(pixels).save(path)
    except ImportError:
        try:
            import matplotlib.image as mpimg
        except ImportError as exc:
            raise ImportError("writing sample grids needs Pillow or matplotlib (pip install 'somanet[plot]')") from exc
        mpimg.imsave(path, pixels, cmap="gray" if pixels.ndim == 2 else None, vmin=0, vmax=255)
    return path


# --------------------------------------------------------------------------- the run report
def write_report(run_dir, results, lines, marker="Generative quality", filename="quality.json", verbose=False):
    """Save ``results`` as ``filename`` (``quality.json``) in ``run_dir`` and put ``lines`` at the end of
    its ``summary.txt``, replacing an earlier report that starts with ``marker`` (both written atomically);
    with ``verbose``, print ``lines``. The generative form of ``somanet.train.reports.write_run_report``."""
    from .reports import write_run_report
    write_run_report(run_dir, filename, results, lines, marker, verbose=verbose)


def _rng_snapshot():
    from .seed import get_rng_state
    return get_rng_state()


def _rng_restore(state):
    from .seed import set_rng_state
    set_rng_state(state)


class GenerativeReport(Callback):
    """Sample grids and quality numbers for a generative model (``VAE`` or ``GAN``) trained by ``fit``.

    With a ``run_dir`` on the trainer: after every ``every_n_epochs`` epochs, ``samples/epoch-NNN.png``
    (``num_samples`` samples from fixed noise, one column per class for a conditional model); at the
    end of ``fit``, ``samples.png``, ``quality.json`` and a "Generative quality" section appended to
    ``summary.txt`` (replacing one from an earlier end of the same run):

    * a VAE: the negative ELBO per image (nats) on ``test_data`` (a dataset, a function returning
      one, or either giving ``(dataset, split_name)``), one posterior sample per image;
    * 28x28 single-channel samples: ``mnist_quality`` of ``fid_samples`` generated images against the
      shipped statistics of MNIST images 8,000-9,999.

    The callback draws its noise from its own generator and puts every random state back afterwards,
    so a run trains the same with or without it; it keeps no state of its own in checkpoints.
    """

    def __init__(self, num_samples=100, every_n_epochs=1, fid_samples=2000, test_data=None, seed=2024,
                 verbose=True):
        self.num_samples = num_samples
        self.every_n_epochs = every_n_epochs
        self.fid_samples = fid_samples
        self.test_data = test_data
        self.seed = seed
        self.verbose = verbose
        self.results = {}

    def _generate(self, model, n, seed_offset=0):
        import somanet
        gen = somanet.Generator().manual_seed(self.seed + seed_offset)
        labels = None
        classes = getattr(model, "num_classes", None)
        if classes:
            labels = somanet.tensor(np.arange(n) % classes)
        was_training = model.training
        model.eval()
        state = _rng_snapshot()
        try:
            out = model.sample(n, labels, generator=gen)
        finally:
            _rng_restore(state)
            model.train(was_training)
        arr = out.array
        return arr.reshape(n, *arr.shape[1:]), (None if labels is None else labels.array)

    def _grid(self, model, path):
        n = self.num_samples
        images, _ = self._generate(model, n)
        if images.ndim != 4:
            return None
        classes = getattr(model, "num_classes", None)
        return save_image_grid(images, path, nrow=classes or None, scale=2 if images.shape[-1] < 16 else 1)

    def on_fit_start(self, trainer, model):
        # The trainer's summary runs the model on one data sample, which a GAN (noise in, images out)
        # cannot take: describe its two networks instead.
        if trainer.run_dir is None or not hasattr(model, "discriminator"):
            return
        path = os.path.join(trainer.run_dir, "summary.txt")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                if not f.read().startswith("summary unavailable"):
                    return
        from ._io import atomic_write_text
        atomic_write_text(path, gan_summary(model, getattr(model, "data_shape", None)) + "\n")

    def on_train_epoch_end(self, trainer, model):
        if trainer.run_dir is None or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        try:
            self._grid(model, os.path.join(trainer.run_dir, "samples", f"epoch-{trainer.current_epoch + 1:03d}.png"))
        except ImportError:
            pass

    def evaluate(self, model):
        """The quality numbers of ``model`` (a dict; see the class documentation)."""
        results = {}
        state = _rng_snapshot()
        was_training = model.training
        model.eval()
        try:
            test = self.test_data() if callable(self.test_data) else self.test_data
            split = "test"
            if isinstance(test, tuple):
                test, split = test
            if test is not None and hasattr(model, "negative_elbo"):
                results.update(self._nelbo(model, test))
                results["nelbo_split"] = split
        finally:
            model.train(was_training)
            _rng_restore(state)
        images, labels = self._generate(model, self.fid_samples, seed_offset=1)
        if images.ndim == 4 and images.shape[1:] == (1, 28, 28):
            try:
                results.update({f"mnist_{k}" if k != "count" else "fid_samples": v
                                for k, v in mnist_quality(images, labels).items()})
            except (ImportError, FileNotFoundError) as exc:
                results["mnist_fid_error"] = str(exc)
        return results

    @staticmethod
    def _nelbo(model, dataset):
        import somanet
        from ..data import DataLoader
        from ..autograd import grad_mode
        somanet.manual_seed(0)  # the posterior samples of the estimate (the state is restored after)
        total, count = 0.0, 0
        with grad_mode.no_grad():
            for batch in DataLoader(dataset, batch_size=500, shuffle=False):
                x, labels = model._split(batch)
                total += float(model.negative_elbo(x, labels).array.sum())
                count += x.shape[0]
        pixels = int(np.prod(model.output_shape))
        return {"test_nelbo": total / count, "test_images": count, "likelihood": model.likelihood,
                "data_dims": pixels}

    def on_fit_end(self, trainer, model):
        if trainer.run_dir is None:
            return
        try:
            self._grid(model, os.path.join(trainer.run_dir, "samples.png"))
        except ImportError as exc:
            print(f"sample grid skipped: {exc}")
        self.results = self.evaluate(model)
        write_report(trainer.run_dir, self.results, self.headline(self.results), verbose=self.verbose)

    @staticmethod
    def headline(results):
        """The report's lines for ``results``."""
        lines = ["Generative quality (end of training):"]
        if "test_nelbo" in results:
            unit = ("binary cross-entropy summed over the pixels" if results["likelihood"] == "bernoulli"
                    else "Gaussian negative log-likelihood summed over the pixels")
            split = results.get("nelbo_split", "test")
            lines.append(f"  {split} negative ELBO: {results['test_nelbo']:.2f} nats per image ({unit} + KL; "
                         f"{results['test_images']} {split} images, one posterior sample each)")
        if "mnist_fid" in results:
            line = (f"  MNIST-FID: {results['mnist_fid']:.2f} ({results['fid_samples']} samples vs MNIST images "
                    f"8,000-9,999); classifier confidence {results['mnist_confidence']:.3f}, classes predicted "
                    f"{round(results['mnist_coverage'] * 10)}/10, class entropy {results['mnist_class_entropy']:.3f}")
            if "mnist_label_accuracy" in results:
                line += f", samples classified as their class {results['mnist_label_accuracy']:.1%}"
            lines.append(line)
        if "mnist_fid_error" in results:
            lines.append(f"  MNIST-FID unavailable: {results['mnist_fid_error']}")
        return lines


_GENERATIVE_MODELS = ("vae", "gan")


def recipe_callbacks(cfg):
    """The callbacks a run config adds for a generative model (``model.name`` ``vae`` or ``gan``): a
    ``GenerativeReport`` scoring the test split of the config's data. Other configs get none."""
    if (cfg.get("model") or {}).get("name") == "ddpm":
        # diffusion models (somanet.models.diffusion) sample with their own report: DDIM and ancestral grids
        from ..models.diffusion import DiffusionReport
        return [DiffusionReport(**dict(cfg["model"].get("report") or {}))]
    if (cfg.get("model") or {}).get("name") == "centernet":
        # detectors (somanet.models.detection) report COCO mAP on held-out data and draw their predictions
        from ..cli.recipes_detection import detection_report
        return [detection_report(cfg)]
    if (cfg.get("model") or {}).get("name") in ("seq2seq", "transformer-seq2seq", "lstm-forecaster",
                                                "transformer-forecaster"):
        # sequence recipes (somanet.cli.recipes_seq) score translation or forecasts on their held-out split
        from ..cli.recipes_seq import sequence_report
        return [sequence_report(cfg)]
    if (cfg.get("model") or {}).get("name") == "char-gpt":
        # character-level language models (somanet.cli.recipes_lm) print and save a text sample at the end
        from ..cli.recipes_lm import text_report
        return [text_report(cfg)]
    if (cfg.get("model") or {}).get("name") == "unet":
        # segmentation (somanet.cli.recipes_apps) reports mean IoU on held-out data and draws predictions
        from ..cli.recipes_apps import segmentation_report
        return [segmentation_report(cfg)]
    if (cfg.get("model") or {}).get("name") in ("ncf", "mf"):
        # recommendation (somanet.cli.recipes_apps) reports HR@10 / NDCG@10 against MF and popularity
        from ..cli.recipes_apps import recommendation_report
        return [recommendation_report(cfg)]
    if (cfg.get("model") or {}).get("name") not in _GENERATIVE_MODELS:
        return []

    def test_data():
        from ..cli.recipes import load_data
        _, val, test = load_data(cfg)
        return (test, "test") if test is not None else (val, "validation")

    return [GenerativeReport(test_data=test_data)]


def gan_summary(model, data_shape=None):
    """The summary tables of a GAN's two networks: noise (and label) in for the generator, examples of
    ``data_shape`` (and label) in for the discriminator. A GAN cannot take one data sample as a whole."""
    from .summary import summary
    label = [()] if getattr(model, "num_classes", None) else []
    parts = [f"Generator (noise [+ label] -> examples):\n{summary(model.generator, [(model.latent_dim,)] + label)}"]
    if data_shape is not None:
        parts.append(f"Discriminator (examples [+ label] -> one output each):\n"
                     f"{summary(model.discriminator, [tuple(data_shape)] + label)}")
    return "\n\n".join(parts)
