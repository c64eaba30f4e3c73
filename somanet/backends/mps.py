"""``somanet.backends.mps``: Apple's Metal backend is not part of somanet."""


def is_available():
    return False


def is_built():
    return False
