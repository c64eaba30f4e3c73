"""Per-channel mean and standard deviation of a dataset, for ``Normalize``."""
import numpy as np

from ...autograd.tensor import Tensor

__all__ = ["compute_mean_std"]


def compute_mean_std(dataset, batch_size=256, num_workers=0, max_samples=None):
    """Per-channel mean and (population) standard deviation over every pixel of a dataset.

    Args:
        dataset: a map-style dataset whose samples are images ``(C, H, W)`` (or ``(H, W)``, one
            channel), or tuples/lists whose first element is one (e.g. ``(image, label)``). Apply
            ``ToTensor`` first for uint8 ``(H, W, C)`` images; values are used as they are.
        batch_size: images per pass (memory only; the result does not depend on it).
        num_workers: DataLoader workers.
        max_samples: use only the first ``max_samples`` samples.

    Returns:
        ``(mean, std)``: float32 NumPy arrays of shape ``(C,)``.

    >>> import numpy as np
    >>> mean, std = compute_mean_std([np.ones((3, 2, 2), np.float32)] * 4)
    >>> mean.tolist(), std.tolist()
    ([1.0, 1.0, 1.0], [0.0, 0.0, 0.0])
    """
    from ..dataloader import DataLoader
    from ..dataset import Subset

    if max_samples is not None:
        dataset = Subset(dataset, range(min(max_samples, len(dataset))))
    count = 0
    total = None
    total_sq = None
    for batch in DataLoader(dataset, batch_size=batch_size, num_workers=num_workers):
        if isinstance(batch, (list, tuple)):
            batch = batch[0]
        x = batch.array if isinstance(batch, Tensor) else np.asarray(batch)
        if x.ndim == 3:
            x = x[:, None]
        if x.ndim != 4:
            raise ValueError(f"compute_mean_std: expected images (C, H, W) or (H, W), got samples of shape {x.shape[1:]}")
        # Accumulate in float64: a float32 running sum over millions of pixels loses digits.
        x = x.astype(np.float64)
        s = x.sum(axis=(0, 2, 3))
        sq = np.square(x).sum(axis=(0, 2, 3))
        total = s if total is None else total + s
        total_sq = sq if total_sq is None else total_sq + sq
        count += x.shape[0] * x.shape[2] * x.shape[3]
    if count == 0:
        raise ValueError("compute_mean_std: the dataset is empty")
    mean = total / count
    var = np.maximum(total_sq / count - mean ** 2, 0.0)
    return mean.astype(np.float32), np.sqrt(var).astype(np.float32)
