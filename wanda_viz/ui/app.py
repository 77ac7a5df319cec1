"""The dashboard's Blocks: one tab per module of ``ui/tabs``, registered in ``TABS``.

A tab module has ``TITLE``, ``ID``, ``build(limits) -> {name: component}`` and ``wire(ctx)``; it
may have ``REFRESH_ON`` (topics such as "session" or "scores") and ``refresh(ctx, trigger)``,
chained after the events of those topics in tab order. Adding a tab is one module and one entry
of ``TABS``. Short model work (prune, outliers, scores, generate) shares one queue
(``wiring.GPU``), long work (sweep, ablation, why) has its own (``wiring.LONG``) and takes the model
per point; redraws from the session state run outside both (``wiring.QUIET``).
Named API endpoints: /prune, /preset, /outliers, /scores, /ablation, /sweep, /generate, /why,
/zero_shot.
"""
from __future__ import annotations

import gradio as gr

from ..service import Session, get_limits
from . import texts
from .tabs import generate, masks, model, outliers, scores, sweep, why, zeroshot
from .wiring import Context

__all__ = ["TABS", "build_demo"]

TABS = (model, outliers, scores, masks, sweep, generate, why, zeroshot)


def _chain_refreshes(ctx: Context) -> None:
    """After each event of a topic: the ``refresh`` of every tab listening to it, in tab order."""
    for topic, events in ctx.events.items():
        for event in events:
            trigger = event.success
            for tab in TABS:
                if topic in getattr(tab, "REFRESH_ON", ()):
                    trigger = tab.refresh(ctx, trigger).then


def build_demo() -> gr.Blocks:
    """The dashboard as a ``gr.Blocks``; builds components only, loads no model."""
    limits = get_limits()
    # delete_cache: Gradio's copies of downloads older than 2 h are removed every hour
    with gr.Blocks(title="wanda-viz: why pruning works", delete_cache=(3600, 7200)) as demo:
        session = gr.State(Session(), time_to_live=3 * 3600)  # deep-copied per browser session
        gr.Markdown(texts.INTRO)
        ctx = Context(session, limits)
        with gr.Tabs():
            for tab in TABS:
                with gr.Tab(tab.TITLE, id=tab.ID):
                    ctx.tabs[tab.ID] = tab.build(limits)
        for tab in TABS:
            tab.wire(ctx)
        _chain_refreshes(ctx)
    return demo
