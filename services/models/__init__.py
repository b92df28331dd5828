"""ORM tables, one module per table. Importing this package registers them all."""

from services.models.api_key import ApiKey
from services.models.base import Base
from services.models.llm_call import LlmCall
from services.models.price_override import PriceOverrideRow
from services.models.project import Project
from services.models.rollup import CallRollup, LlmRequest, RequestRollup, RollupState

__all__ = [
    "ApiKey", "Base", "CallRollup", "LlmCall", "LlmRequest", "PriceOverrideRow", "Project",
    "RequestRollup", "RollupState",
]
