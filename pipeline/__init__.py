"""b2b-enrich: enrich contact files with LeadMagic B2B profiles.

from pipeline import enrich
summary = enrich("crm.csv", "crm.enriched.csv", max_credits=5000)
"""

from pipeline.api import enrich, enrich_async
from pipeline.config import Config
from pipeline.errors import (
    AuthError,
    BudgetReached,
    CheckpointError,
    EnrichError,
    InputError,
    Interrupted,
    OutOfCredits,
    StoppedEarly,
)
from pipeline.summary import Summary

__all__ = [
    "AuthError",
    "BudgetReached",
    "CheckpointError",
    "Config",
    "EnrichError",
    "InputError",
    "Interrupted",
    "OutOfCredits",
    "StoppedEarly",
    "Summary",
    "enrich",
    "enrich_async",
]
