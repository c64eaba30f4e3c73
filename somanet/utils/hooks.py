"""``RemovableHandle``: what every ``register_*_hook`` method returns (module and optimizer hooks).

It sits below every layer (it imports nothing from somanet) so that ``nn`` and ``optim`` share it.
"""

__all__ = ["RemovableHandle"]


class RemovableHandle:
    """A handle to a hook stored in ``hooks_dict`` under ``handle.id``; ``remove()`` unregisters it.

    Ids are unique across all handles, so one dict can hold hooks registered at different times.
    Usable as a context manager: the hook is removed on leaving the ``with`` block.

    Example::

        handle = model.register_forward_hook(lambda mod, args, out: print(out.shape))
        model(x)
        handle.remove()
    """

    next_id = 0

    def __init__(self, hooks_dict):
        self.hooks_dict_ref = hooks_dict
        self.id = RemovableHandle.next_id
        RemovableHandle.next_id += 1

    def remove(self):
        """Unregister the hook (a no-op if it is already gone)."""
        self.hooks_dict_ref.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
