"""The event contract: versioned JSON schemas for the three input topics."""
