"""attendance layer."""
