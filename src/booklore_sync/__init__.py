"""booklore-sync: deliver KOReader reading data to a BookLore server, exactly once."""

__version__ = "0.1.0"
