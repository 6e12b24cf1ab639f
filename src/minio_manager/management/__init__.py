"""management package."""
