"""ORM tables, one module per table. Importing this package registers them all."""

from services.models.api_key import ApiKey
from services.models.base import Base
from services.models.llm_call import LlmCall
from services.models.price_override import PriceOverrideRow
from services.models.project import Project

__all__ = ["ApiKey", "Base", "LlmCall", "PriceOverrideRow", "Project"]
