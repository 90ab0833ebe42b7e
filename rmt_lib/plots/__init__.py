"""Figures: data in, matplotlib Figure out. Plots draw; they never run a model or read model files.

Every function takes plain arrays, strings or the small result objects of the other packages and
returns a new `NotebookFigure` (a Figure that displays itself in Jupyter), made by the one factory
`style.new_figure`. None of them touches pyplot's global state (no current figure, no `plt.show()`),
so a notebook cell that returns a figure shows it exactly once and a script can save it with
`savefig` or `save_figure`.

    style           colours, NotebookFigure, new_figure, save_figure
    memory          distance matrices and memory change, of one sample or many
    attention       write/read attention maps, per-head grids, attention shares vs. their baseline
    schematic       explanatory pictures (lengths in tokens, a schematic memory), not measurements
    segment_frames  the scrubbers' per-segment frames (SegmentFrames)
    figure8         the four panels of the paper's Figure 8 (figure8_panels), and in one figure (figure8_overview)
    data            fact positions, our grammar vs. bAbI's, the segment layout
    training        loss, accuracy and time through the curriculum
    evaluation      accuracy vs. input length (ours beside the paper's), right vs. wrong answers, checks
    execution       how long each chapter of the book took
    cost            time and memory vs. length, training throughput, the evaluate command
    decoding        decoded world states, decoding accuracy, patching, the fact over time

Colour conventions:
* distances: diverging ``RdBu`` from 0, RED = similar (small distance), BLUE = distant, as in the
  paper; the colour bar is in L2 distance units.
* attention: sequential ``viridis``, 0 to the map's maximum.
* fact segments/tokens are marked in ``FACT_COLOUR``, the question segment in ``QUESTION_COLOUR``.
"""
from rmt_lib.plots.attention import (plot_head_shares, plot_heads_compared, plot_read_attention, plot_share_histograms,
                                     plot_share_vs_baseline, plot_write_attention)
from rmt_lib.plots.cost import plot_evaluate, plot_length_scaling, plot_training_throughput
from rmt_lib.plots.decoding import (plot_asked_trajectory, plot_decoded_sample, plot_decoding_by_distance,
                                    plot_intervention_frame, plot_patching, plot_retention)
from rmt_lib.plots.data import plot_fact_positions, plot_grammar_comparison, plot_segment_layout
from rmt_lib.plots.evaluation import (plot_accuracy_vs_length, plot_against_paper, plot_failure_cases,
                                      plot_target_checks)
from rmt_lib.plots.execution import plot_execution_times
from rmt_lib.plots.figure8 import figure8_overview, figure8_panels
from rmt_lib.plots.memory import (plot_change_distributions, plot_change_raster, plot_distance_gallery,
                                  plot_distance_matrix, plot_drift, plot_memory_change)
from rmt_lib.plots.schematic import memory_schematic_html, plot_lengths_in_tokens
from rmt_lib.plots.segment_frames import SegmentFrames
from rmt_lib.plots.style import (ATTENTION_CMAP, BABI_COLOUR, CURRENT_COLOUR, CURVE_COLOURS, DISTANCE_CMAP,
                                 FACT_COLOUR, FIRST_COLOUR, FULL_COLOUR, NOTE_COLOUR, OTHER_COLOUR, OURS_COLOUR,
                                 QUESTION_COLOUR, READ_COLOUR, REFERENCE_COLOUR, RIGHT_COLOUR, RMT_COLOUR,
                                 TOKEN_COLOUR, WRITE_COLOUR, WRONG_COLOUR, NotebookFigure, save_figure)
from rmt_lib.plots.training import plot_training_log

__all__ = [
    # style
    "NotebookFigure", "save_figure",
    "ATTENTION_CMAP", "BABI_COLOUR", "CURRENT_COLOUR", "CURVE_COLOURS", "DISTANCE_CMAP", "FACT_COLOUR",
    "FIRST_COLOUR", "FULL_COLOUR", "NOTE_COLOUR", "OTHER_COLOUR", "OURS_COLOUR", "QUESTION_COLOUR", "READ_COLOUR",
    "REFERENCE_COLOUR", "RIGHT_COLOUR", "RMT_COLOUR", "TOKEN_COLOUR", "WRITE_COLOUR", "WRONG_COLOUR",
    # memory
    "plot_change_distributions", "plot_change_raster", "plot_distance_gallery", "plot_distance_matrix", "plot_drift",
    "plot_memory_change",
    # attention
    "plot_head_shares", "plot_heads_compared", "plot_read_attention", "plot_share_histograms",
    "plot_share_vs_baseline", "plot_write_attention",
    # segment_frames, figure8
    "SegmentFrames", "figure8_overview", "figure8_panels",
    # data, training, evaluation, cost
    "plot_fact_positions", "plot_grammar_comparison", "plot_segment_layout", "plot_training_log",
    "plot_execution_times", "memory_schematic_html", "plot_lengths_in_tokens", "plot_accuracy_vs_length", "plot_against_paper", "plot_failure_cases", "plot_target_checks",
    "plot_evaluate", "plot_length_scaling", "plot_training_throughput",
    # decoding
    "plot_asked_trajectory", "plot_decoded_sample", "plot_decoding_by_distance", "plot_intervention_frame",
    "plot_patching", "plot_retention",
]
