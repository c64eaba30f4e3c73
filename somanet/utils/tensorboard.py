"""``somanet.utils.tensorboard.SummaryWriter``: TensorBoard event files under PyTorch's import path.

The files are written by tensorboardX (install it with ``pip install 'somanet[tensorboard]'``), which is
imported when the first writer is made. somanet tensors (and NumPy arrays, and numbers) are accepted
wherever PyTorch's writer takes tensors; they are converted to NumPy arrays first.

>>> from somanet.utils.tensorboard import SummaryWriter          # doctest: +SKIP
>>> with SummaryWriter("runs/exp1") as writer:                   # doctest: +SKIP
...     writer.add_scalar("loss", loss, global_step=step)
"""
import numpy as np

from ..autograd.tensor import Tensor

__all__ = ["SummaryWriter"]

_INSTALL_HINT = ("somanet.utils.tensorboard needs the tensorboardX package to write TensorBoard files: "
                 "pip install 'somanet[tensorboard]' (or pip install tensorboardX)")


def _backend():
    try:
        import tensorboardX
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return tensorboardX


def _plain(value):
    """A somanet tensor as a NumPy array (detached); containers converted inside; anything else as is."""
    if isinstance(value, Tensor):
        return np.array(value.array)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and any(isinstance(v, Tensor) for v in value):
        return type(value)(_plain(v) for v in value)
    return value


def _scalar(value):
    if isinstance(value, Tensor):
        if value.array.size != 1:
            raise ValueError(f"add_scalar(): expected a one-element tensor, got shape {tuple(value.array.shape)}")
        return value.array.item()
    if isinstance(value, np.ndarray):
        return value.item()
    return value


class SummaryWriter:
    """Write scalars, histograms, images, text and hyperparameters to a TensorBoard log directory.

    Args (as PyTorch's):
        log_dir: the directory; by default ``runs/<date>_<host><comment>``.
        comment: appended to the default directory name.
        purge_step: drop events at or after this step left by a crashed run.
        max_queue: events buffered before a write.
        flush_secs: how often pending events reach the disk.
        filename_suffix: appended to the event file's name.
    """

    def __init__(self, log_dir=None, comment="", purge_step=None, max_queue=10, flush_secs=120, filename_suffix=""):
        tbx = _backend()
        self._writer = tbx.SummaryWriter(logdir=log_dir, comment=comment, purge_step=purge_step,
                                         max_queue=max_queue, flush_secs=flush_secs, filename_suffix=filename_suffix)
        self.log_dir = self._writer.logdir

    def get_logdir(self):
        """The directory the event files go to."""
        return self.log_dir

    # ----------------------------------------------------------------- values
    def add_scalar(self, tag, scalar_value, global_step=None, walltime=None, new_style=False,
                   double_precision=False):
        """Record one number (a Python number or a one-element tensor) under ``tag``."""
        self._writer.add_scalar(tag, _scalar(scalar_value), global_step=_scalar(global_step), walltime=walltime)

    def add_scalars(self, main_tag, tag_scalar_dict, global_step=None, walltime=None):
        """Record several numbers under ``main_tag/<key>`` (each in its own run directory, as PyTorch)."""
        values = {k: _scalar(v) for k, v in tag_scalar_dict.items()}
        self._writer.add_scalars(main_tag, values, global_step=_scalar(global_step), walltime=walltime)

    def add_histogram(self, tag, values, global_step=None, bins="tensorflow", walltime=None, max_bins=None):
        """Record the distribution of ``values`` (a tensor or array) as a histogram."""
        self._writer.add_histogram(tag, np.asarray(_plain(values)), global_step=_scalar(global_step), bins=bins,
                                   walltime=walltime, max_bins=max_bins)

    def add_image(self, tag, img_tensor, global_step=None, walltime=None, dataformats="CHW"):
        """Record an image: ``(3, H, W)`` by default (``dataformats`` 'HWC', 'HW', ...); floats in [0, 1] or
        uint8 in [0, 255]."""
        self._writer.add_image(tag, np.asarray(_plain(img_tensor)), global_step=_scalar(global_step),
                               walltime=walltime, dataformats=dataformats)

    def add_images(self, tag, img_tensor, global_step=None, walltime=None, dataformats="NCHW"):
        """Record a batch of images as one grid."""
        self._writer.add_images(tag, np.asarray(_plain(img_tensor)), global_step=_scalar(global_step),
                                walltime=walltime, dataformats=dataformats)

    def add_figure(self, tag, figure, global_step=None, close=True, walltime=None):
        """Record a matplotlib figure (or a list of them) as an image."""
        self._writer.add_figure(tag, figure, global_step=_scalar(global_step), close=close, walltime=walltime)

    def add_text(self, tag, text_string, global_step=None, walltime=None):
        """Record a piece of text (Markdown is rendered by TensorBoard)."""
        self._writer.add_text(tag, text_string, global_step=_scalar(global_step), walltime=walltime)

    def add_hparams(self, hparam_dict, metric_dict, hparam_domain_discrete=None, run_name=None, global_step=None):
        """Record a run's hyperparameters and final metrics for TensorBoard's HParams tab
        (``hparam_domain_discrete`` is accepted and not used)."""
        metrics = {k: _scalar(v) for k, v in metric_dict.items()}
        hparams = {k: _scalar(v) for k, v in hparam_dict.items()}
        self._writer.add_hparams(hparams, metrics, name=run_name, global_step=_scalar(global_step))

    def add_embedding(self, mat, metadata=None, label_img=None, global_step=None, tag="default",
                      metadata_header=None):
        """Record vectors (rows of ``mat``) for TensorBoard's projector."""
        self._writer.add_embedding(np.asarray(_plain(mat)), metadata=metadata,
                                   label_img=None if label_img is None else np.asarray(_plain(label_img)),
                                   global_step=_scalar(global_step), tag=tag, metadata_header=metadata_header)

    def add_pr_curve(self, tag, labels, predictions, global_step=None, num_thresholds=127, weights=None,
                     walltime=None):
        """Record a precision-recall curve from 0/1 ``labels`` and ``predictions`` in [0, 1]."""
        self._writer.add_pr_curve(tag, np.asarray(_plain(labels)), np.asarray(_plain(predictions)),
                                  global_step=_scalar(global_step), num_thresholds=num_thresholds,
                                  weights=None if weights is None else np.asarray(_plain(weights)), walltime=walltime)

    def add_graph(self, model, input_to_model=None, verbose=False, use_strict_trace=True):
        """Not available: TensorBoard graphs come from PyTorch's tracer, which somanet does not have."""
        raise NotImplementedError("somanet does not implement SummaryWriter.add_graph yet: TensorBoard's graph "
                                  "view needs PyTorch's JIT tracer")

    # ----------------------------------------------------------------- files
    def flush(self):
        """Write every pending event to disk."""
        self._writer.flush()

    def close(self):
        """Flush and close the event files."""
        self._writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
