"""The weight formula reproduces every entry of weights_checksums.json (rule, crc32, values, float64 sum)."""
import json
import math
import zlib

import numpy as np
import pytest

from instdiff_model.formula import formula_tensor, rule_for
from refpaths import vectors_dir

CHECKSUMS = json.loads((vectors_dir().parent / "weights_checksums.json").read_text())


def test_checksum_file_covers_all_added_keys_and_six_base_keys():
    assert len(CHECKSUMS) == 519
    assert sum(k.startswith("position_net.") for k in CHECKSUMS) == 217
    assert sum(".fuser." in k for k in CHECKSUMS) == 272
    assert sum(k.startswith("scaleu_") for k in CHECKSUMS) == 24


@pytest.mark.parametrize("key", sorted(CHECKSUMS))
def test_formula_matches_checksum(key):
    ref = CHECKSUMS[key]
    shape = tuple(ref["shape"])
    assert rule_for(key, shape) == pytest.approx((ref["base"], ref["scale"]), rel=1e-15, abs=0)
    assert zlib.crc32(key.encode()) == ref["crc32"]
    values = formula_tensor(key, shape).numpy().ravel()
    assert values[: len(ref["first4"])].tolist() == ref["first4"]
    assert float(values[-1]) == ref["last"]
    total = float(np.sum(values, dtype=np.float64))
    assert math.isclose(total, ref["sum_f64"], rel_tol=1e-9, abs_tol=1e-6)
