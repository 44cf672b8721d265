"""vLLM stand-in: OpenAI API, vLLM /metrics, continuous-batching timing model."""

from .config import SimConfig
from .server import SimHandle, serve, start, start_in_thread

__all__ = ["SimConfig", "SimHandle", "serve", "start", "start_in_thread"]
