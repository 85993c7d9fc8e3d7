"""A faithful in-memory simulator of Miro's OAuth and REST API v2, for tests and try-outs.

`Sandbox(SandboxConfig(...))` holds the state; `sandbox.app` is its ASGI app; `serve()` serves
it with Hypercorn. See `Sandbox` for the admin operations and `Faults` for fault injection.
"""

from miro_bridge.sandbox._config import Faults, SandboxConfig
from miro_bridge.sandbox._sandbox import Sandbox
from miro_bridge.sandbox._server import serve, serve_environment

__all__ = ["Faults", "Sandbox", "SandboxConfig", "serve", "serve_environment"]
