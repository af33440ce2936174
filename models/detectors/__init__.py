"""Per-key signal detectors: River anomaly detectors over one key's events, one per file.

``models.pipeline.KeyPipeline`` loads a key's state into one detector of each kind per
event, learns the event and combines their levels into the key's score.
"""
from .answer_length import AnswerLength
from .base import EWShare, KeySignal
from .conversation_claims import ConversationClaims
from .extraction_rate_cusum import ExtractionRateCUSUM
from .extraction_share import ExtractionShare
from .follow_up_share import FollowUpShare
from .harvest_onset import HarvestOnset
from .inter_arrival_timing import InterArrivalTiming, regularity
from .large_output_budget import LargeOutputBudget
from .output_yield import OutputYield
from .prompt_length import PromptLength
from .reading_pace import ReadingPace
from .template_repetition import TemplateRepetition
from .topic_novelty import TopicNovelty, sketch_novelty

__all__ = ["KeySignal", "EWShare", "AnswerLength", "ConversationClaims", "ExtractionRateCUSUM", "ExtractionShare",
           "FollowUpShare", "HarvestOnset", "InterArrivalTiming", "LargeOutputBudget", "OutputYield", "PromptLength", "ReadingPace",
           "TemplateRepetition", "TopicNovelty", "regularity",
           "sketch_novelty"]
