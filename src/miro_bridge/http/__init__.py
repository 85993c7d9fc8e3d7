"""The HTTP layer: thin routes that turn requests into actor messages, behind the edge."""

from miro_bridge.http._edge import Edge
from miro_bridge.http.app import create_app, create_quart_app

__all__ = ["Edge", "create_app", "create_quart_app"]
