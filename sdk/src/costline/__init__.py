"""costline SDK: attribute and price every LLM call your application makes."""

__version__ = "0.1.0"
