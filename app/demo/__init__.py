"""Demo data generators for trying Loupe without external data."""
