"""Application layer: assembly, CLI commands, the demo."""
from integrations.app.assembly import App, build_app

__all__ = ["App", "build_app"]
