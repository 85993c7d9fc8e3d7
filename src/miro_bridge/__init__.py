"""miro-bridge: the Trio backend of a Miro app."""

__version__ = "0.1.0"
