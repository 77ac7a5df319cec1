"""Every queued event's inputs are checked before the event joins the queue (Gradio's
``validator=``, which runs inside the queue's ``push``).

The validator gets the same preprocessed values as the handler. It refuses a field's ``Invalid``
value (``fields.py``) with its message, then runs the endpoint's own cheap check, the same
function the handler runs first (the model name, the calibration text's size, whether a prune
came first ...). A refusal is one warning line in the log, the message under the field in the
browser and a ``ValidationError`` naming it in ``gradio_client``; nothing waits in the queue to be
told its input was wrong, and nothing takes the shared model.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import gradio as gr

from ..errors import FieldError, user_message
from .fields import Invalid

__all__ = ["FieldError", "validator", "refuse_invalid"]

logger = logging.getLogger(__name__)


def refuse_invalid(values) -> None:
    """Raise ``gr.Error`` with the message of the first ``Invalid`` value (handlers reached
    without the validator: a direct call, an event without one)."""
    bad = next((v for v in values if isinstance(v, Invalid)), None)
    if bad is not None:
        raise gr.Error(bad.message, print_exception=False)


def _check_message(check: Callable, args: tuple, kwargs: dict) -> tuple[str | None, str | None]:
    """(parameter the failure belongs to, message) of the endpoint's check; (None, None) if it
    passes. Only expected failures are refusals; anything else is left for the handler."""
    try:
        check(*args, **kwargs)
    except gr.Error as err:
        return None, err.message
    except Exception as err:  # noqa: BLE001 - user_message decides what is the user's
        message = user_message(err)
        if message is None:
            logger.debug("validator check of %s: unexpected %r left to the handler",
                         check.__name__, err)
            return None, None
        return getattr(err, "field", None), message
    return None, None


def validator(endpoint: str, positional: Sequence[str], keywords: Sequence[str],
              check: Callable | None = None) -> Callable:
    """The ``validator=`` of one event.

    Args:
        endpoint: its API name, for the log line.
        positional / keywords: the handler's parameter names of the event's positional inputs
            and of its ``inputs_kwargs`` (Gradio's order of the inputs).
        check: ``check(*positional values, **keyword values)`` raising an expected error
            (ValueError, OSError, gr.Error) for a request that must not run.
    Returns:
        A function returning one ``gr.validate`` per input, in Gradio's order.
    """
    names = [*positional, *keywords]

    def validate(*args, **kwargs) -> list[dict]:
        values = dict(zip(positional, args)) | {name: kwargs.get(name) for name in keywords}
        messages = {name: v.message for name, v in values.items() if isinstance(v, Invalid)}
        if not messages and check is not None:
            field, message = _check_message(check, args, kwargs)
            if message is not None:
                messages[field if field in values else _fallback(keywords, positional)] = message
        for message in messages.values():
            logger.warning("%s refused before the queue: %s", endpoint, message)
        results = [gr.validate(name not in messages, messages.get(name, "")) for name in names]
        return results[0] if len(results) == 1 else results  # Gradio: one output, one value

    validate.__name__ = f"validate_{endpoint}"
    return validate


def _fallback(keywords: Sequence[str], positional: Sequence[str]) -> str:
    """The input that shows a check's failure that names no field: the first visible one."""
    return keywords[0] if keywords else positional[0]
