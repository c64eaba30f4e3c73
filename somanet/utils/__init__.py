"""Utilities under the names PyTorch users expect (``somanet.utils.data``)."""
