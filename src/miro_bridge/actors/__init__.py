"""Supervised Trio actors that own the service's state, and the runtime they run on."""

from miro_bridge.actors._runtime import (
    Actor,
    ActorRef,
    ActorStatistics,
    Envelope,
    Inbox,
    Message,
)
from miro_bridge.actors._supervisor import Supervisor

__all__ = [
    "Actor",
    "ActorRef",
    "ActorStatistics",
    "Envelope",
    "Inbox",
    "Message",
    "Supervisor",
]
