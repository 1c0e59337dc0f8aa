"""Face data: readers of the shared sets and of public layouts, subject-disjoint splits,
neutral -> expression pairs, SR degradations and pairs, and the aligned-crop cache.

The data root comes from a flag or ``FACEGEN_DATA`` (:func:`data_root`).
"""

from facegen.data.cache import AlignedCrops, CacheError, FaceAligner, aligned_crops
from facegen.data.degrade import (
    AUGMENTS,
    Augment,
    DegradationError,
    SRPairs,
    bicubic_down,
    bicubic_up,
    gaussian_blur,
    gaussian_blur_down,
    gaussian_kernel,
    luminance,
)
from facegen.expressions import EXPRESSIONS, UnknownLabelError, expression_index, normalise_expression
from facegen.data.layouts import LayoutError, read_celeba, read_ckplus, read_ffhq, read_image_folder
from facegen.data.pairs import ExpressionPair, iter_pairs, read_pairs
from facegen.data.records import FaceRecord, ImageLoadError, load_image
from facegen.data.root import SHARED_SETS, DataRootError, data_root
from facegen.data.sets import (
    READERS,
    DatasetFormatError,
    read,
    read_att_orl,
    read_celeba_fsrnet,
    read_ckplus48,
    read_fer2013_partial,
    read_jaffe,
    read_lfw,
    read_lfw_expressions,
    read_rafd,
)
from facegen.data.splits import (
    TASKS,
    TEST_SUBJECTS,
    PairSplit,
    Split,
    SplitError,
    datasets_for,
    split,
    split_pairs,
    task_pairs,
)

__all__ = [
    "AUGMENTS", "AlignedCrops", "Augment", "CacheError", "DataRootError", "DatasetFormatError", "DegradationError",
    "EXPRESSIONS", "ExpressionPair", "FaceAligner", "FaceRecord", "ImageLoadError", "LayoutError",
    "PairSplit", "READERS", "SHARED_SETS", "SRPairs", "Split", "SplitError", "TASKS", "TEST_SUBJECTS",
    "UnknownLabelError", "aligned_crops", "bicubic_down", "bicubic_up", "data_root", "datasets_for",
    "expression_index", "gaussian_blur", "gaussian_blur_down", "gaussian_kernel", "iter_pairs",
    "load_image", "luminance", "normalise_expression", "read", "read_att_orl", "read_celeba",
    "read_celeba_fsrnet", "read_ckplus", "read_ckplus48", "read_fer2013_partial", "read_ffhq",
    "read_image_folder", "read_jaffe", "read_lfw", "read_lfw_expressions", "read_pairs", "read_rafd",
    "split", "split_pairs", "task_pairs",
]
