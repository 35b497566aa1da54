"""Remote boards: run and time bundles on another machine (`deepc rpc`; docs/rpc.md)."""

from deepc.rpc.auth import read_key, write_key
from deepc.rpc.client import Client, RemoteTimes, parse_address
from deepc.rpc.server import Limits, Server, ServerConfig
from deepc.rpc.tracker import Tracker, leased_client

__all__ = ["Client", "Limits", "RemoteTimes", "Server", "ServerConfig", "Tracker",
           "leased_client", "parse_address", "read_key", "write_key"]
