"""The service layer: model work for the dashboard or any other front end, without Gradio.

* ``limits``: host limits from environment variables, the model choices and the presets;
* ``cache``: the one shared model cache (``MODELS``), hub vetting, parameter counts, temp folders;
* ``fairlock``: the cache's first-come-first-served lock (long jobs take it once per point);
* ``session``: a user's ``Session`` (runs, reports, tables: small CPU objects) and ``RunRecord``
  (bit-packed keep-masks);
* ``weights_store``: SparseGPT runs' kept weights for every session, bounded in bytes;
* ``jobs``: prune / outliers / scores / ablation / sweep / generate / why on the cached dense
  model;
Which failures are the user's, and their one-line message, is ``wanda_viz.errors`` (shared with
the command line).
"""
from .cache import MODELS, CachedModel, ModelCache, check_model_allowed, resolve_model_source
from ..errors import OOM_MESSAGE, user_message
from .jobs import (ablation_job, generate_job, outliers_job, prune_job, scores_job, sweep_job,
                   why_job)
from .limits import (DEFAULT_EVAL_WINDOWS, DEFAULT_SAMPLES, DEFAULT_SEQ_LEN, EMBEDDED, HUB_MODELS,
                     PRESETS, REAL_MODEL, Limits, default_model_choice, get_limits, model_choices)
from .session import ModelSpec, RunRecord, Session

__all__ = ["MODELS", "CachedModel", "ModelCache", "check_model_allowed", "resolve_model_source",
           "OOM_MESSAGE", "user_message", "ablation_job", "generate_job", "outliers_job",
           "prune_job", "scores_job", "sweep_job", "why_job", "DEFAULT_EVAL_WINDOWS",
           "DEFAULT_SAMPLES", "DEFAULT_SEQ_LEN", "EMBEDDED", "HUB_MODELS", "PRESETS", "REAL_MODEL",
           "Limits", "default_model_choice", "get_limits", "model_choices", "ModelSpec",
           "RunRecord", "Session"]
