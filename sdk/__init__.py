"""personae SDK: talk to a personae daemon from Python. Light: no torch.

The wire protocol (`protocol`, `framing`) is shared with the daemon.
"""

from personae.sdk.client import DEFAULT_URL, PersonaeError, Reply, Session, connect
from personae.sdk.framing import Framing
from personae.sdk.protocol import PROTOCOL_VERSION
from personae.sdk.sync import SyncClient

__all__ = [
    "DEFAULT_URL",
    "PROTOCOL_VERSION",
    "Framing",
    "PersonaeError",
    "Reply",
    "Session",
    "SyncClient",
    "connect",
]
