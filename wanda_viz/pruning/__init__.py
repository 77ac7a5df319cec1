"""Pruning: the method registry (``registry``, ``config``), keep-masks, OWL, the kernels and the
sequential pipeline (``prune_model``). Import order: kernels -> registry -> config -> pipeline."""
from .registry import (METHOD_NAMES, METHODS, REFINEMENTS, MethodSpec, RefineInput,
                       RefinementSpec, get_method, get_refinement)
from .config import PruneConfig, parse_structure
from .masks import (achieved_sparsity, apply_keep_mask, block_keep_mask, nm_keep_mask,
                    topk_keep_mask, wanda_variant_keep_mask)
from .owl import outlier_ratio, owl_block_sparsities
from .pipeline import (compute_keep_mask, compute_owl_sparsities, prune_layer, prune_model,
                       prune_shared_input_layers)
from .scores import magnitude_scores, wanda_scores
from .sparsegpt import (inverse_hessian_cholesky, sparsegpt_prune, sparsegpt_prune_group,
                        sparsegpt_saliency)

__all__ = [
    "METHOD_NAMES", "METHODS", "REFINEMENTS", "MethodSpec", "RefineInput", "RefinementSpec",
    "get_method", "get_refinement", "PruneConfig", "parse_structure", "achieved_sparsity",
    "apply_keep_mask", "block_keep_mask", "nm_keep_mask", "topk_keep_mask",
    "wanda_variant_keep_mask", "outlier_ratio", "owl_block_sparsities", "compute_keep_mask",
    "compute_owl_sparsities", "prune_layer", "prune_model", "prune_shared_input_layers",
    "magnitude_scores", "wanda_scores", "inverse_hessian_cholesky", "sparsegpt_prune",
    "sparsegpt_saliency", "sparsegpt_prune_group",
]
