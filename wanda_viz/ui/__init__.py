"""The Gradio dashboard: ``build_demo()`` returns the Blocks; nothing is loaded until a user asks.

``ui/`` is layout, handlers and views only (no torch, transformers or huggingface_hub imports):
``app.py`` registers the tabs, ``tabs/<tab>.py`` builds and wires one tab with its handlers,
``wiring.py`` holds the shared context and event helpers, ``inputs.py`` turns tab 1's values into
validated configs, ``fields.py`` and ``validation.py`` check every input before the queue,
``fair_queue.py`` caps each session's queued jobs, ``views.py`` turns a session into Markdown and
tables, ``texts.py`` the tab explanations. Model work lives in ``wanda_viz.service`` (jobs,
session, model cache, limits, long jobs and their cancel tokens).
"""
from .app import build_demo, configure_logging, serve

__all__ = ["build_demo", "serve", "configure_logging"]
