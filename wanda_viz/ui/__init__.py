"""The Gradio dashboard: ``build_demo()`` returns the Blocks; nothing is loaded until a user asks.

Layout and wiring: ``layout.py``; thin handlers: ``handlers.py``; model-side jobs and the
per-session ``Session`` state: ``engine.py``; the one shared model cache: ``cache.py``;
host limits from environment variables: ``settings.py``.
"""
from .layout import build_demo

__all__ = ["build_demo"]
