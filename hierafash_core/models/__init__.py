"""Model layouts, key conversions and the seeded test checkpoint."""
