"""The service's settings: defaults < TOML file (`MIRO_CONFIG_FILE`) < environment < CLI flags."""

from miro_bridge.config._settings import AuthMode, Settings, load_settings

__all__ = ["AuthMode", "Settings", "load_settings"]
