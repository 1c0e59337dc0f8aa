"""One expression vocabulary for every dataset and model, and the mapping of each dataset's label names to it.

Vocabulary (index order is fixed; classifiers use it):
``neutral, happy, sad, surprise, fear, disgust, angry, contempt``.

Mapping per source (left: the label as the source writes it):

==================  ==========================================================================
JAFFE labels.csv    neutral, happiness->happy, sadness->sad, surprise, fear, disgust, anger->angry
JAFFE file codes    NE, HA, SA, SU, FE, DI, AN
RaFD                neutral, happy, fearful->fear (full RaFD also: sad, surprised->surprise,
                    disgusted->disgust, angry, contemptuous->contempt)
CK+48 labels.csv    happy, sadness->sad, surprise, fear, disgust, anger->angry, contempt
CK+ Emotion codes   0 neutral, 1 anger, 2 contempt, 3 disgust, 4 fear, 5 happy, 6 sadness, 7 surprise
LFW expressions     neutral, happiness->happy, sadness->sad, surprise, fear, disgust,
                    anger->angry, contempt
FER2013 codes       0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral
==================  ==========================================================================
"""

from __future__ import annotations

EXPRESSIONS: tuple[str, ...] = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "angry", "contempt")
#: The six basic expressions a face can be turned into (no neutral, no contempt): the ExprGAN-family
#: models' targets, JAFFE's expression task, the app's choices.
BASIC_EXPRESSIONS: tuple[str, ...] = EXPRESSIONS[1:7]
#: The classes the in-domain expression judge tells apart: neutral and the basic expressions
#: (no contempt, which no benchmark task asks for).
JUDGE_CLASSES: tuple[str, ...] = EXPRESSIONS[:7]

_ALIASES: dict[str, str] = {
    "neutral": "neutral",
    "ne": "neutral",
    "happy": "happy",
    "happiness": "happy",
    "ha": "happy",
    "sad": "sad",
    "sadness": "sad",
    "sa": "sad",
    "surprise": "surprise",
    "surprised": "surprise",
    "su": "surprise",
    "fear": "fear",
    "fearful": "fear",
    "fe": "fear",
    "disgust": "disgust",
    "disgusted": "disgust",
    "di": "disgust",
    "angry": "angry",
    "anger": "angry",
    "an": "angry",
    "contempt": "contempt",
    "contemptuous": "contempt",
}

#: FER2013's ``emotion`` column.
FER2013_CODES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: CK+ ``Emotion/*_emotion.txt`` codes.
CKPLUS_CODES: tuple[str, ...] = ("neutral", "angry", "contempt", "disgust", "fear", "happy", "sad", "surprise")


class UnknownLabelError(ValueError):
    """A dataset label that has no place in the expression vocabulary."""


def normalise_expression(name: str) -> str:
    """Map a dataset's expression name (any case) to the vocabulary in :data:`EXPRESSIONS`."""
    key = name.strip().lower()
    if key not in _ALIASES:
        raise UnknownLabelError(
            f"Expression label {name!r} is not known; known labels: {', '.join(sorted(_ALIASES))}."
        )
    return _ALIASES[key]


def expression_index(name: str) -> int:
    """Class index of an expression (after normalisation) in :data:`EXPRESSIONS`."""
    return EXPRESSIONS.index(normalise_expression(name))
