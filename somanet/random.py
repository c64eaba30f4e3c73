"""One default random generator (a NumPy ``Generator``) seeded by ``manual_seed``.

Every random op in somanet (initialisation, dropout, sampling, shuffling) draws from
``default_generator()`` unless given its own ``Generator``, so one seed makes a run reproducible.
"""
import numpy as np


class Generator:
    """A seedable random source, like ``torch.Generator``; wraps ``numpy.random.Generator``.

    ``Generator(device="cpu")`` as in PyTorch; ``Generator(seed)`` with an int seeds it at once.
    """

    def __init__(self, device="cpu", seed=None):
        if isinstance(device, (int, np.integer)) and not isinstance(device, bool):
            device, seed = "cpu", int(device)
        from . import devices

        self.device = devices.resolve(device, "Generator")
        self.manual_seed(seed)

    def manual_seed(self, seed):
        self._seed = seed
        self.np = np.random.Generator(np.random.PCG64(seed))
        return self

    def initial_seed(self):
        return self._seed

    def get_state(self):
        """The generator's full state as a JSON-friendly dict."""
        return {"seed": self._seed, "bit_generator": self.np.bit_generator.state}

    def set_state(self, state):
        self._seed = state.get("seed")
        self.np.bit_generator.state = state["bit_generator"]


_default = Generator()


def default_generator():
    return _default


def manual_seed(seed):
    """Seed somanet's default generator; returns it."""
    if not isinstance(seed, (int, np.integer)):
        raise TypeError(f"manual_seed(): expected an int seed, got {type(seed).__name__}")
    return _default.manual_seed(int(seed))


def seed():
    """Seed the default generator from the operating system's entropy; returns the seed."""
    s = int(np.random.SeedSequence().entropy % (2**63))
    _default.manual_seed(s)
    return s


def initial_seed():
    return _default.initial_seed()


def get_rng_state():
    return _default.get_state()


def set_rng_state(state):
    _default.set_state(state)


def numpy_rng(generator=None):
    """The ``numpy.random.Generator`` to draw from: the given one's, or the default's."""
    if generator is None:
        return _default.np
    if isinstance(generator, Generator):
        return generator.np
    if isinstance(generator, np.random.Generator):
        return generator
    raise TypeError(f"expected a somanet.Generator, got {type(generator).__name__}")
