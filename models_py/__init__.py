"""pitwall's Python layer: reads `podium_features` from the warehouse, never recomputes it."""
