"""The weight formula reproduces every entry of weights_checksums.json (rule, crc32, values, float64 sum)."""
import json
import math
import zlib

import numpy as np
import pytest
import torch

from instdiff_model.model import InstanceDiffusionModel
from tools.formula import formula_tensor, rule_for
from refpaths import official_keys, vectors_dir

CHECKSUMS = json.loads((vectors_dir().parent / "weights_checksums.json").read_text())


def test_checksum_file_covers_every_added_key_with_its_official_shape_and_six_base_keys():
    """The keys and shapes of the checksums are instancediffusion_keys.tsv's (513 added keys) and our model's."""
    official = official_keys()
    assert len(official) == 513 and {k: tuple(CHECKSUMS[k]["shape"]) for k in official} == official
    with torch.device("meta"):
        assert InstanceDiffusionModel().official_spec() == official
    base = set(CHECKSUMS) - set(official)
    assert len(base) == 6 and not any(k.startswith(("position_net.", "scaleu_")) or ".fuser." in k for k in base)


@pytest.mark.parametrize("key", sorted(CHECKSUMS))
def test_formula_matches_checksum(key):
    ref = CHECKSUMS[key]
    shape = tuple(ref["shape"])
    assert rule_for(key, shape) == pytest.approx((ref["base"], ref["scale"]), rel=1e-15, abs=0)
    assert zlib.crc32(key.encode()) == ref["crc32"]
    values = formula_tensor(key, shape).numpy().ravel()
    base, scale = ref["base"], ref["scale"]
    assert values.dtype == np.float32 and values.size == math.prod(shape)
    assert ((values >= np.float32(base - scale)) & (values <= np.float32(base + scale))).all()  # base + scale * [-1, 1)
    if values.size >= 10_000:  # uniform: mean base, std scale / sqrt(3), within 5 standard errors
        assert abs(values.mean(dtype=np.float64) - base) < 5 * scale / math.sqrt(3 * values.size)
        assert abs(values.std(dtype=np.float64) - scale / math.sqrt(3)) < 0.01 * scale
    assert values[: len(ref["first4"])].tolist() == ref["first4"]
    assert float(values[-1]) == ref["last"]
    total = float(np.sum(values, dtype=np.float64))
    assert math.isclose(total, ref["sum_f64"], rel_tol=1e-9, abs_tol=1e-6)
