"""The service's settings: defaults < TOML file (`MIRO_CONFIG_FILE`) < environment < CLI flags."""

from miro_bridge.config._settings import (
    AuthMode,
    Network,
    Settings,
    base_url,
    load_settings,
    own_redirect_uri,
)

__all__ = ["AuthMode", "Network", "Settings", "base_url", "load_settings", "own_redirect_uri"]
