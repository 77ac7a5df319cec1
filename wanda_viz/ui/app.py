"""The dashboard's Blocks: one tab per module of ``ui/tabs``, registered in ``TABS``.

A tab module has ``TITLE``, ``ID``, ``build(limits) -> {name: component}`` and ``wire(ctx)``; it
may have ``REFRESH_ON`` (topics such as "session" or "scores") and ``refresh(ctx, trigger)``,
chained after the events of those topics in tab order. Adding a tab is one module and one entry
of ``TABS``. Short model work (prune, outliers, scores, generate) shares one queue
(``wiring.GPU``), long work (sweep, ablation, why) has its own (``wiring.LONG``) and takes the model
per point; redraws from the session state run outside both (``wiring.QUIET``).
The tabs' named API endpoints: /compare, /prune, /preset, /outliers, /scores, /ablation, /sweep,
/generate, /why, /zero_shot, /sinks. The app's own: Named API endpoint: /cancel (stops the
client's running long jobs).

A session's end (closed tab, disconnected client: Gradio's ``unload``) cancels its long jobs and
frees what it held at once; the state's delete callback frees the same when Gradio expires it.
``serve`` launches the app with the host's queue, upload and per-session limits (``app.py``, the
tests and the benchmarks use it).
"""
from __future__ import annotations

import logging
import os
import threading
from collections import deque

import gradio as gr

from ..service import Session, get_limits
from ..service.long_jobs import LONG_JOBS
from ..service.memory import configure_allocator, release_memory
from . import fair_queue, texts
from .tabs import generate, masks, model, outliers, scores, sinks, sweep, why, zeroshot
from .wiring import Context, cancel_jobs

__all__ = ["TABS", "build_demo", "serve", "configure_logging", "end_session",
           "wait_for_session_end"]

logger = logging.getLogger(__name__)

TABS = (model, outliers, scores, masks, sweep, generate, why, zeroshot, sinks)


def _chain_refreshes(ctx: Context) -> None:
    """After each event of a topic: the ``refresh`` of every tab listening to it, in tab order."""
    for topic, events in ctx.events.items():
        for event in events:
            trigger = event.success
            for tab in TABS:
                if topic in getattr(tab, "REFRESH_ON", ()):
                    trigger = tab.refresh(ctx, trigger).then


def _release_session(session: Session) -> None:
    """``gr.State``'s delete callback: the session expired or ended."""
    if isinstance(session, Session):
        session.release()


def end_session(demo: gr.Blocks, session_id: str) -> None:
    """A session ended: cancel its long jobs, free its results and Gradio's per-session copies of
    every input and output (kept for reconnection, otherwise until 10,000 sessions later)."""
    LONG_JOBS.cancel(session_id)
    holder = getattr(demo, "state_holder", None)
    if holder is not None and session_id in holder:
        holder.delete_state(session_id)  # runs the delete callback of the session's state
        with holder.lock:
            holder.session_data.pop(session_id, None)
            holder.time_last_used.pop(session_id, None)
    release_memory()
    logger.info("session %s ended: long jobs cancelled, results freed", session_id[:8])
    with _ENDED:
        _ENDED_IDS.append(session_id)
        _ENDED.notify_all()


_ENDED = threading.Condition()
_ENDED_IDS: deque[str] = deque(maxlen=1000)  # the latest ended sessions (for wait_for_...)


def wait_for_session_end(session_id: str, timeout: float | None = None) -> bool:
    """Block until ``end_session`` ran for ``session_id`` (tests and benchmarks wait on it
    instead of sleeping); False on timeout."""
    with _ENDED:
        return _ENDED.wait_for(lambda: session_id in _ENDED_IDS, timeout)


def build_demo() -> gr.Blocks:
    """The dashboard as a ``gr.Blocks``; builds components only, loads no model."""
    limits = get_limits()
    # delete_cache: Gradio's copies of downloads older than 2 h are removed every hour
    with gr.Blocks(title="wanda-viz: why pruning works", delete_cache=(3600, 7200)) as demo:
        session = gr.State(Session(), time_to_live=3 * 3600,  # deep-copied per browser session
                           delete_callback=_release_session)
        gr.Markdown(texts.INTRO)
        ctx = Context(session, limits)
        with gr.Tabs():
            for tab in TABS:
                with gr.Tab(tab.TITLE, id=tab.ID):
                    ctx.tabs[tab.ID] = tab.build(limits)
        for tab in TABS:
            tab.wire(ctx)
        _chain_refreshes(ctx)
        gr.api(cancel_jobs, api_name="cancel", queue=False)

        async def on_unload(request: gr.Request) -> None:  # on the event loop, like Gradio's
            end_session(demo, request.session_hash)         # own expiry of state
        demo.unload(on_unload)
    return demo


def configure_logging(level: str | None = None) -> None:
    """The lines a host reads: wanda_viz at ``WANDA_VIZ_LOG_LEVEL`` (default INFO: evictions and
    recomputations of SparseGPT runs, requests refused before the queue, cancels, ended
    sessions, rebuilt model copies), every other library at WARNING, on stderr."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        level=logging.WARNING)
    chosen = (level or os.environ.get("WANDA_VIZ_LOG_LEVEL") or "INFO").upper()
    logging.getLogger("wanda_viz").setLevel(chosen)


# Tables keep whole words in their headers: at 800 px, not "perplexit / y".
CSS = """
.readable-table th, .readable-table th * { word-break: keep-all !important;
  overflow-wrap: normal !important; }
"""


def serve(demo: gr.Blocks, **launch_kwargs):
    """Queue (``WANDA_VIZ_QUEUE_SIZE``, one job per listener at a time, at most
    ``WANDA_VIZ_MAX_QUEUED_PER_SESSION`` per session) and launch with uploads capped at
    ``WANDA_VIZ_MAX_UPLOAD_MB``; returns ``launch``'s result."""
    limits = get_limits()
    configure_allocator()
    demo.queue(max_size=limits.queue_size, default_concurrency_limit=1)
    fair_queue.install(demo)
    launch_kwargs.setdefault("max_file_size", f"{limits.max_upload_mb:g}mb")
    launch_kwargs.setdefault("css", CSS)
    return demo.launch(**launch_kwargs)
