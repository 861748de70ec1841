"""The ACD routing core: pure, deterministic, time passed in. See core.py."""

from telephony import native

# Compiled modules (build/native) when built from exactly this source; see telephony/native.py.
__path__ = native.prefer_compiled(__name__, __path__)

from telephony.acd.config import CALL_TYPES, PRIORITIES, STRATEGIES, QueueConfig, Tier  # noqa: E402
from telephony.acd.core import Acd, AcdError  # noqa: E402

__all__ = ["Acd", "AcdError", "CALL_TYPES", "PRIORITIES", "QueueConfig", "STRATEGIES", "Tier"]
