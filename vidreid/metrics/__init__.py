"""Evaluation: distances, CMC/mAP/mINP, re-ranking, the TKP protocols and reports."""

from .distance import iter_distance_chunks, pairwise_distance
from .protocols import FeatureSet, aggregate_splits, evaluate_protocols
from .rank import RankResult, evaluate_features, evaluate_rank
from .report import format_table, plot_cmc, results_to_json
from .rerank import re_ranking

__all__ = [
    "FeatureSet",
    "RankResult",
    "aggregate_splits",
    "evaluate_features",
    "evaluate_protocols",
    "evaluate_rank",
    "format_table",
    "iter_distance_chunks",
    "pairwise_distance",
    "plot_cmc",
    "re_ranking",
    "results_to_json",
]
