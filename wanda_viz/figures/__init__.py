"""Figures: pure functions, analysis results in -> ``plotly.graph_objects.Figure`` out.

Every figure has a title, axis titles with units, a short caption (the title's subtitle,
``fig.layout.title.subtitle.text``), its full protocol (``figure_protocol(fig)``), plain numbers
on every axis (log axes: decades or 1-2-5 steps) and one look per method (``method_style``:
colour, dash and marker from the method's registry entry, a bar pattern derived from the marker). Nothing here touches a model.
"""
from ._style import (CATEGORY_COLORS, METHOD_COLORS, METHOD_STYLES, STRUCTURE_SYMBOLS,
                     apply_log_axis, figure_protocol, finish_figure, log_ticks, method_color,
                     method_style, plain_number)
from .activations import plot_input_norms, plot_layer_magnitudes, plot_residual_heatmap
from .compare import plot_perplexity_bars, plot_sparsity_grid
from .masks import (plot_group_ablation, plot_mask_categories, plot_row_sparsity,
                    plot_score_histograms)
from .report import write_sweep_report
from .results import plot_generation_probs, plot_layer_sparsity, plot_sweep, sweep_caption
from .why import (plot_activation_intervention, plot_channel_intervention,
                  plot_disagreement_by_layer, plot_disagreement_vs_norm)
from .zeroshot import plot_zero_shot, zero_shot_caption, zero_shot_means, zero_shot_takeaway

__all__ = [
    "CATEGORY_COLORS", "METHOD_COLORS", "METHOD_STYLES", "STRUCTURE_SYMBOLS", "apply_log_axis",
    "figure_protocol", "finish_figure", "log_ticks", "method_color", "method_style",
    "plain_number", "plot_perplexity_bars", "plot_sparsity_grid",
    "plot_input_norms", "plot_layer_magnitudes", "plot_residual_heatmap",
    "plot_group_ablation", "plot_mask_categories", "plot_row_sparsity", "plot_score_histograms",
    "write_sweep_report", "plot_generation_probs", "plot_layer_sparsity", "plot_sweep",
    "sweep_caption", "plot_activation_intervention", "plot_channel_intervention",
    "plot_disagreement_by_layer", "plot_disagreement_vs_norm", "plot_zero_shot",
    "zero_shot_caption", "zero_shot_means", "zero_shot_takeaway",
]
