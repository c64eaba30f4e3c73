"""The one place that imports Gymnasium, so that ``import somanet`` and ``import somanet.rl`` stay fast
and work without it."""

_INSTALL_HINT = ("somanet.rl's environments need Gymnasium: pip install 'somanet[rl]' (or pip install "
                 "'gymnasium>=1.0'); the Box2D environments (LunarLander) also need pip install 'gymnasium[box2d]'")


def gym():
    """The ``gymnasium`` module, or an ImportError saying how to install it."""
    try:
        import gymnasium
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return gymnasium


def have_gym():
    """Whether Gymnasium can be imported."""
    try:
        gym()
    except ImportError:
        return False
    return True
