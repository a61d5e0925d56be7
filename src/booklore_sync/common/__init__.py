"""Neutral code that every layer may use: the product and the emulator alike.

Nothing here imports another ``booklore_sync`` package, so any module can
depend on it without creating a cycle.
"""
