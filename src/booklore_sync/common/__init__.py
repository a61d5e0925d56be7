"""Neutral code that both the product and the emulator need (no imports from either)."""
