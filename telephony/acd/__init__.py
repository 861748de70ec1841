"""The ACD routing core: pure, deterministic, time passed in. See core.py."""

from telephony.acd.config import CALL_TYPES, PRIORITIES, STRATEGIES, QueueConfig, Tier
from telephony.acd.core import Acd, AcdError

__all__ = ["Acd", "AcdError", "CALL_TYPES", "PRIORITIES", "QueueConfig", "STRATEGIES", "Tier"]
