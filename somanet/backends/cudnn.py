"""``somanet.backends.cudnn``: cuDNN's switches, kept as plain flags; there is no cuDNN in this install."""
enabled = True
benchmark = False
deterministic = False
allow_tf32 = True


def is_available():
    return False


def version():
    return None
