from __future__ import annotations

import pytest

from rdam.errors import ConfigError
from rdam.models import ModelConfig


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("arch", "vit"),
        ("region_head", "x"),
        ("temporal", "lstm"),
        ("output_stride", 4),
        ("num_classes", 0),
        ("dropout", 1.5),
        ("stream_fusion", "max"),
        ("frame_weight", "tanh"),
    ],
)
def test_invalid_values_are_config_errors_naming_the_key(key, value):
    with pytest.raises(ConfigError, match=key):
        ModelConfig(**{key: value})


def test_round_trip_and_unknown_keys():
    cfg = ModelConfig(backbone="resnet18", num_classes=7, mean=(0.5, 0.5, 0.5))
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown model config keys"):
        ModelConfig.from_dict({"num_clases": 7})
