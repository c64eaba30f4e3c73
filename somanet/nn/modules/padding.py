"""placeholder until the family is written"""
__all__ = []
