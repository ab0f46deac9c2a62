"""The campaign store: all of its SQL, a writer for the engine and a read-only reader for watchers."""

from .meta import MetaName, RunMeta
from .reader import STORE, NodeRow, StoreReader
from .writer import CampaignStore

__all__ = ["STORE", "CampaignStore", "MetaName", "NodeRow", "RunMeta", "StoreReader"]
