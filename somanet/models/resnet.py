"""placeholder until the model is written"""
__all__ = []
