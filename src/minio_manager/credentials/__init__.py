"""credentials package."""
