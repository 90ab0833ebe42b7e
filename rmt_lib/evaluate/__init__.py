"""Accuracy of a trained RMT by input length: `run` evaluates samples (the evaluate JSON), `results` reads
committed results back as accuracy curves for the book."""
from rmt_lib.evaluate.results import (CURVE_LABELS, EVALUATION_COMMANDS, EVALUATION_FILES, AccuracyComparison,
                                      AccuracyCurve, against_paper, Breakdown, LengthAccuracy, accuracy_breakdown,
                                      accuracy_comparison, accuracy_curve, committed_breakdown, committed_evaluation,
                                      describe_at, describe_model, describe_sample_counts, evaluation_summary,
                                      live_accuracy, load_model_or_missing, read_evaluation)
from rmt_lib.evaluate.run import (accuracy_by_length, evaluate, generate_eval_samples, stream_threads,
                                  supporting_fact_place)

__all__ = ["CURVE_LABELS", "EVALUATION_COMMANDS", "EVALUATION_FILES", "AccuracyComparison", "AccuracyCurve",
           "against_paper", "Breakdown", "LengthAccuracy", "accuracy_breakdown", "accuracy_by_length", "committed_breakdown", "accuracy_comparison", "accuracy_curve", "committed_evaluation",
           "describe_at", "describe_model", "describe_sample_counts", "evaluate", "evaluation_summary",
           "generate_eval_samples", "live_accuracy", "load_model_or_missing", "read_evaluation", "stream_threads",
           "supporting_fact_place"]
