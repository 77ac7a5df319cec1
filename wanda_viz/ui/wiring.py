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

Before the queue: every queued event gets a ``validator=`` (``validation.py``): the fields'
refusals and the endpoint's ``check`` answer at once, before the event waits in a queue or takes
the model. Long jobs (``long_job="sweep"``) run with a ``CancelToken`` from ``LONG_JOBS`` under
their session: Gradio's own cancellation of the event (the Cancel button's ``cancels=``), the
``/cancel`` endpoint and a closed tab all set it, and the job stops at its next decoder block or
point.
"""
from __future__ import annotations

import functools
import inspect
import logging
from collections import defaultdict
from dataclasses import dataclass, field

import anyio
import gradio as gr
from gradio.context import LocalContext

from ..cancel import Cancelled, CancelToken
from ..service import Limits, user_message
from ..service.cache import report_waits
from ..service.long_jobs import LONG_JOBS
from .validation import refuse_invalid, validator

__all__ = ["GPU", "LONG", "QUIET", "Context", "listen", "readable", "pick", "need_calibration",
           "session_id", "cancel_jobs", "wire_cancel"]

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
            refuse_invalid([*args, *kwargs.values()])
            with report_waits(_wait_message(progress) if progress is not None else None):
                return fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - every failure becomes a message for the user
            raise _as_user_error(fn.__name__, err) from err
    return wrapper


def _as_user_error(handler: str, err: Exception) -> gr.Error:
    if isinstance(err, Cancelled):  # not an error: one line; the message is errors.py's
        logger.info("%s cancelled by its user", handler)
        return gr.Error(user_message(err), print_exception=False)
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


def session_id() -> str | None:
    """The browser session (or ``gradio_client`` client) of the event being handled."""
    request = LocalContext.request.get(None)
    return getattr(request, "session_hash", None)


def _long_job(name: str, handler):
    """Run ``handler(..., cancel=token)`` in a worker thread with a token from ``LONG_JOBS``.

    When Gradio cancels the event (the Cancel button's ``cancels=``, Gradio's ``/cancel`` route)
    the waiting task ends at once and the token is set: the thread stops at its next decoder
    block or point."""
    @functools.wraps(handler)
    async def run(*args, **kwargs):
        session, token = session_id(), CancelToken()

        def work():  # listed in LONG_JOBS while the thread works, also after a cancel
            with LONG_JOBS.track(session, name, token):
                return handler(*args, cancel=token, **kwargs)
        try:
            return await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
        except BaseException:  # asyncio.CancelledError among them: tell the thread
            LONG_JOBS.stop(token)
            raise
    return run


def _order(handler, names: list[str]):
    """The handler returning its outputs as a tuple in ``names``' order."""
    def pack(values: dict):
        return values[names[0]] if len(names) == 1 else tuple(values[n] for n in names)

    if inspect.iscoroutinefunction(handler):
        @functools.wraps(handler)  # Gradio reads the handler's signature (kwargs, progress)
        async def ordered_async(*args, **kw):
            return pack(await handler(*args, **kw))
        return ordered_async

    @functools.wraps(handler)
    def ordered(*args, **kw):
        return pack(handler(*args, **kw))
    return ordered


def _positional_names(handler, count: int) -> list[str]:
    params = [p for p in inspect.signature(handler).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return [p.name for p in params[:count]]


def listen(trigger, handler, inputs: list, outputs: dict, *, check=None,
           long_job: str | None = None, **kwargs):
    """``trigger(handler, inputs, outputs)`` for a handler returning ``{name: value}``.

    A queued event with visible inputs (``inputs_kwargs``) is validated before it joins the
    queue: the fields' refusals, then ``check`` (same arguments as the handler, raising an
    expected error); the browser shows a refusal under an input, so an event whose only input is
    the session state keeps its checks in the handler (a message box). ``long_job``: the job's
    name in ``LONG_JOBS`` (the handler takes ``cancel=``)."""
    if long_job is not None:
        handler = _long_job(long_job, handler)
    if kwargs.get("queue", True) and kwargs.get("inputs_kwargs"):
        kwargs["validator"] = validator(
            kwargs.get("api_name") or handler.__name__, _positional_names(handler, len(inputs)),
            list(kwargs.get("inputs_kwargs") or {}), check)
    return trigger(_order(handler, list(outputs)), inputs, list(outputs.values()), **kwargs)


def pick(components: dict, *names: str) -> dict:
    """The named components, in the order given."""
    return {name: components[name] for name in names}


def need_calibration(session) -> None:
    if session.calib_ids is None:
        raise gr.Error("Run a prune in tab 1 first: the analyses reuse its model and calibration "
                       "windows.")


def cancel_jobs(job: str = "") -> str:
    """Stop this session's running long jobs (``job``: only that one, e.g. "sweep"); each stops
    at its next decoder block or point, and the points it finished stay cached. The API's
    ``/cancel``."""
    names = LONG_JOBS.cancel(session_id(), job or None)
    if not names:
        return "Nothing to cancel: no long job of this session is running."
    return (f"Cancelled: {', '.join(names)}. It stops at its next decoder block or point; the "
            "points it finished are cached.")


def wire_cancel(button, event, job: str, status) -> None:
    """A Cancel button for one long job (``event``: its event, or a list of the events that run
    it): Gradio cancels the event (the waiting task; the job's wrapper then sets the token) and
    ``cancel_jobs`` sets the token as well, so the job stops whether or not the browser still
    knows the event."""
    button.click(None, None, None, cancels=list(event) if isinstance(event, list) else [event])
    button.click(functools.partial(cancel_jobs, job), None, status, queue=False,
                 api_visibility="private")
