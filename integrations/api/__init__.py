"""Client for the external attendance API (see docs/external-api.md)."""
from integrations.foundation.errors import ApiError, RosterError

__all__ = ["ApiError", "RosterError"]
