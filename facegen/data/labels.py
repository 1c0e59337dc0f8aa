"""The expression vocabulary as the data readers name it: :mod:`facegen.expressions` is its one home
(models read it too, and models do not import :mod:`facegen.data`)."""

from __future__ import annotations

from facegen.expressions import (CKPLUS_CODES, EXPRESSIONS, FER2013_CODES, UnknownLabelError, expression_index,
                                 normalise_expression)

__all__ = ["CKPLUS_CODES", "EXPRESSIONS", "FER2013_CODES", "UnknownLabelError", "expression_index",
           "normalise_expression"]
