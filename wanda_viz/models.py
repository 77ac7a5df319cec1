"""Compatibility shim: ``models.py`` was split into ``layers.py`` (blocks, prunable layers, weight
views, ``WeightBackup``, ``resolve_seq_len``) and ``loading.py`` (``load_model``, the local-path
rule). Nothing in ``wanda_viz`` imports this module (tests/test_layering.py checks); it only keeps
code written against the old name working. Import from ``layers`` or ``loading`` instead.
"""
from .layers import (WeightBackup, count_prunable_params, find_decoder_layers,  # noqa: F401
                     find_prunable_layers, model_context_length, model_device, resolve_device,
                     resolve_seq_len, weight_matrix)
from .loading import DEMO_MODEL_DIR, is_local_path, load_model, resolve_dtype  # noqa: F401
