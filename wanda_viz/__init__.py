"""wanda-viz: prune causal LMs with Wanda, magnitude or SparseGPT and see why pruning works.

Data flow (each arrow one public function):
    load_model -> get_calibration_ids -> prune_model (sequential block-by-block statistics ->
    scores -> keep-masks -> weight update) -> evaluate / generate_text -> figures.
Methods are entries of ``pruning.registry``; every analysis that evaluates a changed model runs
on the point runner (``points``); ``service`` runs jobs for the dashboard (``ui``).
docs/ARCHITECTURE.md describes the registry, the point runner and the sequential protocol.
"""
from .config import CalibConfig, EvalConfig, PruneConfig, parse_structure
from .data import (DataUnavailableError, get_calibration_ids, get_eval_ids, load_wikitext2_text,
                   resolve_data_dir, sample_calibration_windows, tokenize_text)
from .evaluate import GenerationResult, evaluate, generate_text, perplexity
from .gguf import REAL_MODEL
from .layers import (WeightBackup, find_decoder_layers, find_prunable_layers, resolve_seq_len,
                     weight_matrix)
from .loading import DEMO_MODEL_DIR, load_model
from .pruning import prune_model
from .sequential import calibrate_blocks
from .result import PruneResult

__all__ = [
    "CalibConfig", "EvalConfig", "PruneConfig", "parse_structure", "DataUnavailableError",
    "get_calibration_ids", "get_eval_ids", "load_wikitext2_text", "resolve_data_dir",
    "sample_calibration_windows", "tokenize_text", "GenerationResult", "evaluate", "generate_text",
    "perplexity", "DEMO_MODEL_DIR", "WeightBackup", "find_decoder_layers", "find_prunable_layers",
    "load_model", "resolve_seq_len", "weight_matrix", "calibrate_blocks", "prune_model",
    "PruneResult", "REAL_MODEL",
]
__version__ = "0.1.0"
