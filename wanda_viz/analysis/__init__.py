"""Analyses behind the visualisations: pure functions usable from the UI, the CLI and notebooks.

* outliers: LLM.int8 outlier features and massive activations (arXiv 2208.07339, 2402.17762)
* scores: |W|, Wanda and SparseGPT score distributions, thresholds, agreement
* groups: per-row vs per-layer masks and the comparison-group ablation (Wanda, Table 8)
* sweep: methods x sparsities x structures (each point on the point runner, ``wanda_viz.points``)
* generation: dense vs pruned continuations, token by token
* why, why_interventions, why_activations, why_run: why Wanda works, shown causally (per-channel
  disagreement with magnitude, outlier-channel and massive-activation interventions)
* export: tables to CSV / JSON
"""
from .export import export_table, table_to_records
from .generation import GenerationComparison, Variant, compare_generations, first_divergence
from .groups import (CATEGORY_LABELS, AblationSpec, GroupComparison, ablation_configs,
                     compare_group_masks, group_ablation, mask_categories)
from .outliers import (OUTLIER_MAGNITUDE, ActivationReport, collect_activation_report,
                       find_massive_activations, find_outlier_features, input_norm_table,
                       layer_magnitude_table)
from .scores import (SCORE_METHODS, ScoreReport, analyze_layer_scores, collect_layer_stats,
                     compute_layer_scores, group_keep_mask, pruned_overlap, rank_values,
                     score_agreement, score_thresholds, spearman_correlation)
from .sweep import SWEEP_COLUMNS, SweepSpec, run_sweep, sweep_points
from .why import DisagreementReport, layer_disagreement, model_disagreement
from .why_activations import ActivationIntervention, ActivationSpec, activation_intervention
from .why_interventions import ChannelIntervention, ChannelSpec, channel_intervention
from .why_run import WhyResult, WhySpec, export_why, run_why

__all__ = [
    "export_table", "table_to_records",
    "GenerationComparison", "Variant", "compare_generations", "first_divergence",
    "CATEGORY_LABELS", "AblationSpec", "GroupComparison", "ablation_configs",
    "compare_group_masks", "group_ablation", "mask_categories",
    "OUTLIER_MAGNITUDE", "ActivationReport", "collect_activation_report",
    "find_massive_activations", "find_outlier_features", "input_norm_table",
    "layer_magnitude_table",
    "SCORE_METHODS", "ScoreReport", "analyze_layer_scores", "collect_layer_stats",
    "compute_layer_scores", "group_keep_mask", "pruned_overlap", "rank_values",
    "score_agreement", "score_thresholds", "spearman_correlation",
    "SWEEP_COLUMNS", "SweepSpec", "run_sweep", "sweep_points",
    "DisagreementReport", "layer_disagreement", "model_disagreement", "ActivationIntervention",
    "ActivationSpec", "activation_intervention", "ChannelIntervention", "ChannelSpec",
    "channel_intervention", "WhyResult", "WhySpec", "export_why", "run_why",
]
