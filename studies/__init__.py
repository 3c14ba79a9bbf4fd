"""Studies: one file per claim group."""
