"""ORM tables, one module per table. Importing this package registers them all."""

from services.models.alert import Alert
from services.models.anomaly import DetectedAnomaly
from services.models.api_key import ApiKey
from services.models.base import Base
from services.models.budget import Budget
from services.models.channel import Channel
from services.models.delivery import Delivery
from services.models.forecast import BudgetForecastRow
from services.models.llm_call import LlmCall
from services.models.price_override import PriceOverrideRow
from services.models.project import Project
from services.models.rollup import (
    CallRollup,
    LlmRequest,
    RequestQueueEntry,
    RequestRollup,
    RollupState,
)

__all__ = [
    "Alert",
    "ApiKey",
    "Base",
    "Budget",
    "BudgetForecastRow",
    "CallRollup",
    "Channel",
    "Delivery",
    "DetectedAnomaly",
    "LlmCall",
    "LlmRequest",
    "PriceOverrideRow",
    "Project",
    "RequestQueueEntry",
    "RequestRollup",
    "RollupState",
]
