"""Seeding and capturing every random state a training run depends on.

A run draws random numbers from four places: somanet's default generator (initialisation, dropout,
augmentations, and the shuffle order of a loader without its own generator), the generators that
DataLoaders were given (data order), NumPy's legacy global generator (``np.random.*``, used by some
user code and libraries), and Python's ``random``. ``get_rng_state`` captures all of them as a dict
of plain values and arrays (what checkpoints store) and ``set_rng_state`` puts them back, which is
what exact resume needs.
"""
import os
import random

import numpy as np

from .. import random as somanet_random

__all__ = ["seed_everything", "get_rng_state", "set_rng_state"]


def seed_everything(seed=None):
    """Seed somanet's default generator, NumPy's global generator and Python's ``random``.

    Args:
        seed: a non-negative int; ``None`` draws one from the operating system's entropy.

    Returns:
        the seed used (log it to reproduce the run).

    >>> seed_everything(42)
    42
    """
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**32))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed_everything(): expected a non-negative int seed, got {seed!r}")
    seed = int(seed)
    somanet_random.manual_seed(seed)
    # NumPy's legacy generator only takes 32-bit seeds.
    np.random.seed(seed % (2**32))
    random.seed(seed)
    # Inherited by worker subprocesses and child processes that want to derive their own seed.
    os.environ["SOMANET_GLOBAL_SEED"] = str(seed)
    return seed


def _numpy_legacy_state():
    # The key stays an array (it is saved with the other arrays); converting its 624 words to a
    # list at every epoch start would cost more than everything else the capture does.
    state = np.random.get_state(legacy=False)
    return {"bit_generator": state["bit_generator"],
            "key": state["state"]["key"], "pos": int(state["state"]["pos"]),
            "has_gauss": int(state["has_gauss"]), "gauss": float(state["gauss"])}


def _set_numpy_legacy_state(state):
    np.random.set_state({"bit_generator": state["bit_generator"],
                         "state": {"key": np.asarray(state["key"], dtype=np.uint32), "pos": state["pos"]},
                         "has_gauss": state["has_gauss"], "gauss": state["gauss"]})


def _python_state():
    version, internal, gauss = random.getstate()
    return {"version": version, "internal": internal, "gauss_next": gauss}


def _set_python_state(state):
    random.setstate((state["version"], tuple(state["internal"]), state["gauss_next"]))


def _generator_of(source):
    """The somanet Generator behind ``source`` (a Generator, or a loader or sampler holding one)."""
    if source is None:
        return None
    if isinstance(source, somanet_random.Generator):
        return source
    gen = getattr(source, "generator", None)
    return gen if isinstance(gen, somanet_random.Generator) else None


def get_rng_state(generators=()):
    """Every random state as a dict of numbers, strings, tuples and arrays (checkpoint-ready).

    Args:
        generators: extra ``somanet.Generator`` objects (or DataLoaders holding one in
            ``.generator``), e.g. the data-order generators; an entry without one is kept as None.
    """
    return {
        "somanet": somanet_random.get_rng_state(),
        "numpy": _numpy_legacy_state(),
        "python": _python_state(),
        "generators": [None if (g := _generator_of(s)) is None else g.get_state() for s in generators],
    }


def set_rng_state(state, generators=()):
    """Restore what ``get_rng_state`` captured (``generators`` in the same order as when captured)."""
    somanet_random.set_rng_state(state["somanet"])
    _set_numpy_legacy_state(state["numpy"])
    _set_python_state(state["python"])
    saved = state.get("generators", [])
    if len(saved) != len(generators):
        raise ValueError(f"set_rng_state(): the state holds {len(saved)} data generator(s) but "
                         f"{len(generators)} were given to restore")
    for source, gstate in zip(generators, saved):
        gen = _generator_of(source)
        if (gen is None) != (gstate is None):
            raise ValueError("set_rng_state(): a data loader's generator does not match the saved state "
                             "(one has a generator, the other has none)")
        if gen is not None:
            gen.set_state(gstate)
