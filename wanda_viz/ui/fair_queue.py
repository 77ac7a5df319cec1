"""A fair queue: one session (a browser tab or a ``gradio_client`` client) may have at most
``WANDA_VIZ_MAX_QUEUED_PER_SESSION`` jobs queued or running, so it cannot fill the queue that all
users share (``queue(max_size=...)``: then everyone else's job fails with "Queue is full").

Gradio has no per-session cap, so ``install`` wraps the queue's ``push`` (Gradio 6's entry point
of every queued event, where ``validator=`` also runs): a request beyond the cap is refused with
a message that says why, before it is queued. The count is Gradio's own record of the session's
pending events plus the requests of the session being admitted right now (``push`` awaits the
validator, so concurrent requests of one session could otherwise all pass). Refusals reach the
browser and ``gradio_client`` as validation errors (422), with their message.

The same wrapper turns an input error that Gradio raises before any handler runs (a file path
in the upload payload instead of an uploaded file) into such a message, instead of a bare
"400 Bad Request".
Limits: the session id is chosen by the client, so a client that invents a new one per request
is not held by this cap (the queue's ``max_size`` still bounds the total).
"""
from __future__ import annotations

import logging
from collections import Counter

import gradio as gr

from ..service import get_limits

__all__ = ["install", "refusal"]

logger = logging.getLogger(__name__)


def refusal(message: str, parameter: str | None = None) -> tuple[bool, list[dict], str]:
    """``push``'s answer for a refused request: a validation error (HTTP 422) with ``message``
    (``gr.validate``'s format: the browser and ``gradio_client`` show it)."""
    return False, [{**gr.validate(False, message), "parameter_name": parameter or "request"}], \
        "validator_error"


def _cap_message(pending: int, cap: int) -> str:
    return (f"this session already has {pending} job(s) queued or running; this host allows "
            f"{cap} per session (WANDA_VIZ_MAX_QUEUED_PER_SESSION) so that one user cannot "
            "fill the queue everyone shares: wait for one to finish, or cancel it")


def _explain(detail: str, body, queue) -> tuple[str, str | None]:
    """(message, parameter) for an error Gradio raised while checking a request's inputs."""
    from gradio import route_utils
    fn = route_utils.get_fn(queue.blocks, None, body)
    names = list(getattr(fn, "input_parameter_names", None) or [])
    for index, value in enumerate(body.data or []):
        if isinstance(value, dict) and "path" in value and "not uploaded by a user" in detail:
            name = names[index] if index < len(names) else None
            return (f"{name or 'the file'}: the payload names a file on the server "
                    f"({value['path']!r}); upload the file itself (gradio_client: "
                    "handle_file(path)); server paths are not accepted", name)
    return f"the request was refused: {detail}", None


def install(demo) -> None:
    """Wrap ``demo``'s queue (call after ``demo.queue(...)``, which replaces it)."""
    queue = demo._queue
    push = queue.push
    admitting: Counter[str] = Counter()

    async def capped_push(body, request, username):
        session = body.session_hash
        if session is not None:
            cap = get_limits().max_queued_per_session
            pending = len(queue.pending_event_ids_session.get(session, ())) + admitting[session]
            if pending >= cap:
                message = _cap_message(pending, cap)
                logger.warning("queue: %s", message)
                return refusal(message)
            admitting[session] += 1
        try:
            success, detail, state = await push(body=body, request=request, username=username)
        finally:
            if session is not None:
                admitting[session] -= 1
                if admitting[session] <= 0:
                    del admitting[session]
        if state == "error" and isinstance(detail, str):
            message, parameter = _explain(detail, body, queue)
            logger.warning("queue: %s", message)
            return refusal(message, parameter)
        return success, detail, state

    queue.push = capped_push
