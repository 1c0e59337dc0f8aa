"""Tiny expression-model configs shared by tests/test_expression_models.py and tests/test_expression_training.py."""

from __future__ import annotations

from facegen.models.exprgan import ExprGANConfig
from facegen.models.lmk_guided import LmkGuidedConfig

EXPRGAN_PRESETS = {
    "exprgan": ExprGANConfig.tiny(),
    "exprgan-grey": ExprGANConfig.tiny(channels=1),
    "exprgan-msd": ExprGANConfig.tiny(encoder="msd", unsharp=True),
    "exprgan-msd-no-unsharp": ExprGANConfig.tiny(encoder="msd", unsharp=False),
}
LMK_PRESETS = {
    "lmk-guided": LmkGuidedConfig.tiny(),
    "lmk-guided-grey": LmkGuidedConfig.tiny(channels=1),
    "lmk-guided-no-feature-init": LmkGuidedConfig.tiny().without_feature_init(),
    "lmk-guided-no-label": LmkGuidedConfig.tiny().without_label(),
    "lmk-guided-merged-heatmaps": LmkGuidedConfig.tiny(merge_heatmaps=True),
    "lmk-guided-residual": LmkGuidedConfig.tiny(residual=True),
}
