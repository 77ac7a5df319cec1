"""How tabs connect: the shared ``Context``, the two queue settings and ``listen``.

Handlers return a dict ``{output name: value}``; ``listen`` connects one to an event with the
outputs given as ``{name: component}``, so the order of the values is defined once, by the outputs
dict, instead of by a tuple that must match a positional list of components.
Expected failures become ``gr.Error`` with the library's message (``readable``), so the app keeps
serving; while a handler waits for the shared model, its progress bar says how many jobs are ahead.

Queues: short model jobs (prune, preset, outliers, scores, generate) share the "gpu" Gradio queue,
one at a time; long jobs (sweep, group ablation) have their own "long" queue, so one can run while
a short job runs. Both meet at the model cache's first-come-first-served lock, which long jobs
take once per point: a generation waits at most one sweep point, not the whole sweep.
"""
from __future__ import annotations

import functools
import logging
from collections import defaultdict
from dataclasses import dataclass, field

import gradio as gr

from ..service import Limits, user_message
from ..service.cache import report_waits

__all__ = ["GPU", "LONG", "QUIET", "Context", "listen", "readable", "pick", "need_calibration"]

logger = logging.getLogger(__name__)

GPU = {"concurrency_limit": 1, "concurrency_id": "gpu"}    # short model jobs, one at a time
LONG = {"concurrency_limit": 1, "concurrency_id": "long"}  # sweeps, ablations: model per point
QUIET = {"api_visibility": "private", "queue": False}   # cheap redraws from gr.State


@dataclass
class Context:
    """What ``wire`` gets: the session state, the host limits and every tab's components.

    ``events`` collects, per topic, the events that change the session: "session" (prune,
    preset: new runs and windows), "scores" (a new score report). After every tab is wired, the
    ``refresh`` of each tab whose ``REFRESH_ON`` names the topic is chained onto them, in tab order.
    """

    session: gr.State
    limits: Limits
    tabs: dict[str, dict] = field(default_factory=dict)     # tab id -> {name: component}
    events: dict[str, list] = field(default_factory=lambda: defaultdict(list))


def readable(fn):
    """Turn expected failures into gr.Error, logged as one line; unexpected ones are logged with
    their traceback and reach the user as a short "internal error" message (the app keeps serving).
    While the handler waits for the shared model, its ``gr.Progress`` shows the jobs ahead."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        progress = next((v for v in [*args, *kwargs.values()] if isinstance(v, gr.Progress)),
                        None)
        try:
            with report_waits(_wait_message(progress) if progress is not None else None):
                return fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - every failure becomes a message for the user
            raise _as_user_error(fn.__name__, err) from err
    return wrapper


def _as_user_error(handler: str, err: Exception) -> gr.Error:
    message = err.message if isinstance(err, gr.Error) else user_message(err)
    if message is None:
        logger.exception("%s failed unexpectedly", handler)
        message = (f"internal error ({type(err).__name__}: {err}); it was logged for the host. "
                   "Your other results are unchanged.")
    else:
        logger.warning("%s: %s", handler, message)  # expected: the user's input, one line
    return gr.Error(message, print_exception=False)


def _wait_message(progress: gr.Progress):
    def show(jobs_ahead: int) -> None:
        progress(0, desc=f"waiting for the shared model: {jobs_ahead} job(s) ahead "
                         "(a sweep or ablation lets others in between its points)")
    return show


def listen(trigger, handler, inputs: list, outputs: dict, **kwargs):
    """``trigger(handler, inputs, outputs)`` for a handler returning ``{name: value}``."""
    names = list(outputs)

    @functools.wraps(handler)  # Gradio reads the handler's signature (kwargs, progress)
    def ordered(*args, **kw):
        values = handler(*args, **kw)
        return values[names[0]] if len(names) == 1 else tuple(values[n] for n in names)
    return trigger(ordered, inputs, list(outputs.values()), **kwargs)


def pick(components: dict, *names: str) -> dict:
    """The named components, in the order given."""
    return {name: components[name] for name in names}


def need_calibration(session) -> None:
    if session.calib_ids is None:
        raise gr.Error("Run a prune in tab 1 first: the analyses reuse its model and calibration "
                       "windows.")
