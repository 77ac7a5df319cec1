"""Pruning methods (magnitude, Wanda, SparseGPT, RIA; ``registry``), masks, OWL, the DSnoT
refinement and the sequential pipeline."""
from .masks import (achieved_sparsity, apply_keep_mask, nm_keep_mask, topk_keep_mask,
                    wanda_variant_keep_mask)
from .owl import outlier_ratio, owl_block_sparsities
from .pipeline import (BlockStep, calibrate_blocks, compute_keep_mask, compute_owl_sparsities,
                       prune_layer, prune_model, prune_shared_input_layers)
from .registry import METHOD_NAMES, METHODS, MethodSpec, get_method
from .scores import magnitude_scores, wanda_scores
from .sparsegpt import (inverse_hessian_cholesky, sparsegpt_prune, sparsegpt_prune_group,
                        sparsegpt_saliency)

__all__ = [
    "achieved_sparsity", "apply_keep_mask", "nm_keep_mask", "topk_keep_mask",
    "wanda_variant_keep_mask", "outlier_ratio", "owl_block_sparsities", "BlockStep",
    "calibrate_blocks", "compute_keep_mask", "compute_owl_sparsities", "prune_layer",
    "prune_model", "prune_shared_input_layers", "METHOD_NAMES", "METHODS", "MethodSpec",
    "get_method", "magnitude_scores", "wanda_scores", "inverse_hessian_cholesky",
    "sparsegpt_prune", "sparsegpt_saliency", "sparsegpt_prune_group",
]
