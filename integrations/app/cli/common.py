"""What every command shares: settings that stop with a readable message, quiet logging."""
from __future__ import annotations

import sys

from integrations.foundation.logs import configure_logging
from integrations.settings import Settings, SettingsError, load_settings


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None


def quiet_logging() -> None:
    """Simulations and the demo print conversations; logs show only warnings, with request ids."""
    configure_logging("WARNING")
