"""``somanet.backends.mkldnn``: oneDNN's switch, a plain flag (somanet's CPU kernels are its own)."""
enabled = True


def is_available():
    return False
