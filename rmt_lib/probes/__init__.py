"""Probes: captured memory states and attention maps in, numbers out. No plotting (`rmt_lib.plots` draws).

- `memory`: distances between memory states, the change each segment makes, drift;
- `attention`: write and read attention shares, the automatic head choice;
- `run`: `probe_samples` runs a model over samples (the probe JSON contract);
- `summary`: every Figure 8 claim as a mean with a bootstrap interval;
- `contract`: the probe JSON out;
- `capture`: one sample in full, for the single-sample panels;
- `figure8`: everything the four panels need;
- `heldout`: the chapters' held-out measurement, cached on disk;
- `claims`: the book's claims checked against its thresholds, and their tables;
- `failures`, `heads`: why answers fail, and how stable the chosen heads are;
- `decode`: a linear probe that reads every actor's location from a memory state;
- `patch`: interventions on the memory state (another sample's, reset, noise) and what the answer does;
- `tracking`: the decoded fact over time (overwriting, and where a wrong answer lost its fact).
"""
from rmt_lib.probes.attention import (AttentionLayout, attention_map, choose_head, fact_mask, read_attention_share,
                                      read_memory_baseline, token_share, write_attention_share)
from rmt_lib.probes.capture import SampleCapture, capture_sample
from rmt_lib.probes.claims import (AUC_TARGET, DRIFT_RATIO_TARGET, WRITE_LIFT_TARGET, TargetCheck, drift_check, estimate,
                                   figure8_checks, prose_control_finding, relation, sample_numbers,
                                   target_check)
from rmt_lib.probes.contract import to_json, write_probe_json
from rmt_lib.probes.decode import (CLASSES, LinearProbe, MemoryStates, collect_memory_states, decoding_accuracy,
                                   decoding_records, fit_decoding_probe, held_out_states, untrained_copy)
from rmt_lib.probes.failures import FailureReport, SampleOutcome, describe_outcome, failure_cases
from rmt_lib.probes.figure8 import Figure8Inputs, figure8_inputs
from rmt_lib.probes.heads import HeadComparison, head_choice_stability, head_comparison
from rmt_lib.probes.heldout import MEASURE_SEED, HeldOutProbe, held_out_probe
from rmt_lib.probes.memory import change_ratio, distance_matrix, drift, memory_change
from rmt_lib.probes.patch import (FRAME_ACTIONS, InterventionFrames, PatchPair, intervention_frames, patch_memory,
                                  patch_pairs, reset_finding)
from rmt_lib.probes.run import drift_conclusion, drift_shape, probe_drift, probe_generated, probe_samples
from rmt_lib.probes.summary import ROLES, change_by_role, read_units, segment_roles, summarize, write_units
from rmt_lib.probes.tracking import (asked_trajectory, fact_retention, overwrite_samples, overwriting,
                                     retention_findings)

__all__ = ["AUC_TARGET", "DRIFT_RATIO_TARGET", "drift_check", "target_check", "MEASURE_SEED", "WRITE_LIFT_TARGET", "FailureReport", "HeadComparison", "HeldOutProbe",
           "SampleOutcome", "TargetCheck", "describe_outcome", "estimate", "failure_cases", "figure8_checks",
           "head_choice_stability", "head_comparison", "held_out_probe", "read_units", "prose_control_finding", "relation",
           "sample_numbers", "write_units", "drift", "drift_conclusion", "drift_shape", "probe_drift",
           "ROLES", "AttentionLayout", "Figure8Inputs", "SampleCapture", "attention_map", "capture_sample",
           "change_by_role", "change_ratio", "choose_head", "distance_matrix", "fact_mask", "figure8_inputs",
           "memory_change", "probe_generated", "probe_samples", "read_attention_share", "read_memory_baseline",
           "segment_roles", "summarize", "to_json", "token_share", "write_attention_share", "write_probe_json",
           "CLASSES", "LinearProbe", "MemoryStates", "collect_memory_states", "decoding_accuracy", "decoding_records",
           "fit_decoding_probe", "held_out_states", "untrained_copy", "FRAME_ACTIONS", "InterventionFrames",
           "PatchPair", "intervention_frames", "patch_memory", "patch_pairs", "reset_finding", "asked_trajectory", "fact_retention", "retention_findings",
           "overwrite_samples", "overwriting"]
