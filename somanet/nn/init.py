"""Weight initialisation (placeholder until written)."""
