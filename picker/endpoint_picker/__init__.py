"""Endpoint picker: an Envoy ext_proc service that routes LLM requests to the best model-server pod."""

__version__ = "0.1.0"
