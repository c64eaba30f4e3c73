"""The base of the bundled datasets that hold every sample in memory as two arrays."""
import numpy as np

from ...ops.creation import from_numpy
from ..dataset import Dataset


class ArraysDataset(Dataset):
    """A dataset whose samples are ``data[i]`` and ``targets[i]`` of two in-memory NumPy arrays.

    Subclasses fill ``data``, ``targets``, ``transform`` and ``target_transform``; ``classification``
    decides whether a target comes out as a Python int.
    """

    classification = True

    @property
    def class_to_idx(self):
        return {c: i for i, c in enumerate(self.classes)}

    def __getitem__(self, index):
        x = self.data[index]
        y = self.targets[index]
        if self.classification:
            y = int(y)
        if self.transform is not None:
            x = self.transform(x)
        if self.target_transform is not None:
            y = self.target_transform(y)
        return x, y

    def __len__(self):
        return self.data.shape[0]

    def _fetch_batch(self, indices):
        # With no transforms, one fancy index gives exactly what default_collate would build.
        if self.transform is not None or self.target_transform is not None:
            return None
        idx = np.asarray(indices, dtype=np.int64)
        return [from_numpy(self.data[idx]), from_numpy(self.targets[idx])]
