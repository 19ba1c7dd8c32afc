"""Speech data: phone-aligned (frame-labelled) and utterance-labelled corpora as log-mel / MFCC frames.

One concern per module: ``features`` (what a frame is, offline and streaming), ``augment`` (SpecAugment),
``audio`` (reading and resampling), ``alignments`` (TIMIT ``.PHN``, fold maps, frame labels), ``records``
(utterances, prepared features, ``SpeechMeta``), ``batches`` (dataset, collate), ``cache`` (features in memory
and on disk), ``errors`` (bad files), ``datamodule`` (``SpeechDataModule``), ``corpora`` (``PhoneCorpus``,
``UtteranceCorpus``) and ``synthetic`` (``SyntheticPhones``, the offline default).

The names below are the package's public interface; configs and old checkpoints name the datamodules as
``datamodules.speech.<Class>``, which keeps resolving through these re-exports.
"""

from ..batching import IGNORE
from .alignments import Segment, frame_phones, merge_frames, parse_alignment, read_alignment, read_fold_map
from .audio import AUDIO_SUFFIXES, audio_files, iter_blocks, read_audio, resample
from .augment import SpecAugment
from .batches import FeatureDataset, collate
from .corpora import PhoneCorpus, UtteranceCorpus
from .datamodule import SPLITS, SpeechDataModule
from .errors import OnBadFile, SpeechDataError
from .features import DELTA_WIDTH, FeatureConfig, FeatureExtractor, FeatureStream, WindowedStream
from .records import Prepared, SpeechMeta, Utterance, meta_preview
from .synthetic import PhoneShape, SyntheticPhones, phone_shapes, synthetic_utterance

__all__ = [
    "AUDIO_SUFFIXES", "DELTA_WIDTH", "IGNORE", "SPLITS",
    "FeatureConfig", "FeatureDataset", "FeatureExtractor", "FeatureStream", "OnBadFile", "PhoneCorpus", "PhoneShape",
    "Prepared", "Segment", "SpecAugment", "SpeechDataError", "SpeechDataModule", "SpeechMeta", "SyntheticPhones",
    "Utterance", "UtteranceCorpus", "WindowedStream",
    "audio_files", "collate", "frame_phones", "iter_blocks", "merge_frames", "meta_preview", "parse_alignment",
    "phone_shapes", "read_alignment", "read_audio", "read_fold_map", "resample", "synthetic_utterance",
]
