"""Check this implementation against a reference-vector folder: `python -m tools.verify DIR`."""
import json
import random
import re
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file
from tools.official_boxes import attention_mask_from_box, rescale_box

from instdiff_model import preprocess as P
from instdiff_model.constants import CONTEXT_DIM
from instdiff_model.fourier import fourier_embed, freq_bands
from instdiff_model.fuser import GatedSelfAttentionDense
from instdiff_model.position_net import DROP_CONFIGS, InstanceTokenizer
from instdiff_model.scaleu import apply_scaleu

from .formula import fill_module, formula_tensor

TOLERANCES = {"fourier_embedder": 1e-5, "position_net": 1e-4, "fuser": 1e-4, "scaleu": 1e-5, "preprocess": 0.0}
TOKENIZER_INPUTS = ("boxes", "masks", "positive_embeddings", "scribbles", "polygons", "segs", "points")
SKIP_UNET = "SKIP (whole-UNet case: run tests/test_reference_unet.py on the host)"


class CaseError(Exception):
    """A case this verifier cannot evaluate (missing tensor, unknown output, unsupported config)."""


def _t(arr) -> torch.Tensor:
    return torch.from_numpy(np.array(arr))


def _err(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise CaseError(f"shape {a.shape} != reference {b.shape}")
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def _need(tensors: dict, key: str):
    if key not in tensors:
        raise CaseError(f"missing tensor {key}")
    return tensors[key]


def check_fourier(meta, tensors, ctx) -> float:
    """out.<x>_emb<F> = Fourier(in.<x>, F); out.freq_bands<F> = the frequency table."""
    err = 0.0
    outs = [k for k in tensors if k.startswith("out.")]
    if not outs:
        raise CaseError("no output tensors")
    for key in outs:
        m = re.fullmatch(r"out\.(.+)_emb(\d+)", key) or re.fullmatch(r"out\.freq_bands(\d+)", key)
        if m is None:
            raise CaseError(f"unknown output {key}")
        if key.startswith("out.freq_bands"):
            ours = freq_bands(int(m.group(1)))
        else:
            ours = fourier_embed(_t(_need(tensors, "in." + m.group(1))), int(m.group(2)))
        err = max(err, _err(ours.numpy(), tensors[key]))
    return err


def _drop_name(flags: dict) -> str:
    want = (flags.get("test_drop_boxes"), flags.get("test_drop_points"), flags.get("test_drop_scribbles"), flags.get("test_drop_masks"))
    for name, value in DROP_CONFIGS.items():
        if tuple(value) == want:
            return name
    raise CaseError(f"drop flags {flags} match no known config")


def check_position_net(meta, tensors, ctx) -> float:
    """Every stored config: out.objs__<cfg> and the returned drop_box_mask."""
    prefix = meta.get("weights", {}).get("key_prefix", "position_net.")
    net = ctx.tokenizer(ctx.salt(meta), prefix)
    inputs = [_t(_need(tensors, "in." + n)) for n in TOKENIZER_INPUTS]
    configs = meta.get("configs") or {}
    if not configs:
        raise CaseError("no configs in the case JSON")
    err = 0.0
    for cfg, info in configs.items():
        with torch.no_grad():
            objs, drop_box_mask = net(*inputs, drop=_drop_name(info.get("drop_flags", {})))
        err = max(err, _err(objs.numpy(), _need(tensors, f"out.objs__{cfg}")))
        if "returned_drop_box_mask" in info and drop_box_mask != info["returned_drop_box_mask"]:
            err = max(err, 1.0)
    return err


def check_fuser(meta, tensors, ctx) -> float:
    """GatedSelfAttentionDense(query_dim, context_dim, n_heads, d_head) filled under the JSON key prefix."""
    c = int(meta["query_dim"])
    fuser = GatedSelfAttentionDense(c, int(meta.get("context_dim", CONTEXT_DIM)), int(meta.get("n_heads", 8)), int(meta.get("d_head", c // 8)))
    fill_module(fuser, ctx.salt(meta), meta["weights"]["key_prefix"])
    objs = tensors.get("in.objs")
    if objs is None:
        objs = _need(ctx.load("fuser_objs")[1], "in.objs")
    with torch.no_grad():
        out = fuser.eval()(_t(_need(tensors, "in.x")), _t(objs))
    return _err(out.numpy(), _need(tensors, "out.out"))


def check_scaleu(meta, tensors, ctx) -> float:
    """cat(apply_scaleu(h, hs, b_i, s_i), 1) vs out.h_cat; the stored b_i, s_i must equal the formula's."""
    i = meta.get("output_block_index")
    if i is None:
        i = int(re.search(r"(\d+)$", meta["case"]).group(1))
    b, s = _need(tensors, f"in.scaleu_b_{i}"), _need(tensors, f"in.scaleu_s_{i}")
    err = max(_err(formula_tensor(f"scaleu_b_{i}", b.shape, ctx.salt(meta)).numpy(), b),
              _err(formula_tensor(f"scaleu_s_{i}", s.shape, ctx.salt(meta)).numpy(), s))
    with torch.no_grad():
        h, hs = apply_scaleu(_t(_need(tensors, "in.h")), _t(_need(tensors, "in.hs")), _t(b), _t(s))
    return max(err, _err(torch.cat([h, hs], dim=1).numpy(), _need(tensors, "out.h_cat")))


def check_preprocess(meta, tensors, ctx) -> float:
    """Every mask output, the reorder_scribbles / box-helper examples and the attention masks, exactly."""
    checked, err = set(), 0.0

    def cmp(key, ours):
        nonlocal err
        checked.add(key)
        err = max(err, _err(ours, _need(tensors, key)))

    for name, info in (meta.get("masks") or {}).items():
        mask = _need(tensors, f"in.mask__{name}")
        h, w = mask.shape
        py_seed = info["python_random_seed_before_polygon_sampling"]
        np_seed = info["np_random_seed_before_scribble_sampling"]
        poly = P.polygon_points(mask, random.Random(py_seed))
        poly = np.zeros(2 * P.N_POLYGON_POINTS) if poly is None else poly
        scrib = P.scribble_points(mask, np.random.RandomState(np_seed))
        outputs = {
            "polygons_raw": poly,
            "polygons_norm": P.normalise_points(poly, w, h),
            "boundary_concat": P.boundary_points(mask).ravel(),
            "inside_points_k128": P.inside_points(mask, 128, random.Random(py_seed)).astype(np.float64).ravel(),
            "scribbles_raw": scrib,
            "scribbles_norm": P.normalise_points(scrib, w, h),
        }
        for what, ours in outputs.items():
            key = f"out.{what}__{name}"
            if key in tensors:
                cmp(key, ours)
    if "out.att_masks_64" in tensors:
        boxes = _need(tensors, "in.att_boxes")
        size = tensors["out.att_masks_64"].shape[-1]
        cmp("out.att_masks_64", np.stack([attention_mask_from_box(b, size) for b in boxes]))
    unchecked = sorted(k for k in tensors if k.startswith("out.") and k not in checked)
    if unchecked:
        raise CaseError(f"unknown outputs {unchecked}")
    for example in (meta.get("reorder_scribbles") or {}).values():
        err = max(err, _err(P.reorder_scribble(example["input"]), example["output"]))
    for ex in meta.get("inference_box_helpers") or []:
        box = rescale_box(ex["xywh_pixels"], ex["width"], ex["height"])
        err = max(err, _err(box, ex["rescale_box_xyxy_norm"]), _err(P.point_from_box(box), ex["get_point_from_box"]))
    return err


KINDS = [  # (kind, tolerance key, name prefix, checker); the first matching prefix wins
    ("fourier_embedder", "fourier_embedder", "fourier", check_fourier),
    ("position_net", "position_net", "position_net", check_position_net),
    ("fuser_objs", None, "fuser_objs", None),
    ("fuser", "fuser", "fuser", check_fuser),
    ("scaleu", "scaleu", "scaleu", check_scaleu),
    ("preprocess", "preprocess", "preprocess", check_preprocess),
    ("unet_end_to_end", None, "unet", None),
]


class Context:
    """Folder access plus caches (filled tokenizer per salt/prefix, loaded cases)."""

    def __init__(self, folder: Path, index: dict):
        self.folder, self.index = folder, index
        self._nets, self._cases = {}, {}

    def salt(self, meta: dict) -> str:
        return meta.get("weights", {}).get("formula_salt", self.index.get("formula_salt", ""))

    def load(self, name: str):
        if name not in self._cases:
            meta = json.loads((self.folder / f"{name}.json").read_text())
            meta.setdefault("case", name)
            path = self.folder / f"{name}.safetensors"
            self._cases[name] = (meta, load_file(str(path)) if path.exists() else {})
        return self._cases[name]

    def tokenizer(self, salt: str, prefix: str) -> InstanceTokenizer:
        if (salt, prefix) not in self._nets:
            net = InstanceTokenizer().eval()
            fill_module(net, salt, prefix)
            self._nets[(salt, prefix)] = net
        return self._nets[(salt, prefix)]


def classify(name: str, meta: dict):
    """(kind, tolerance, checker) by name prefix, falling back to the JSON `module` text."""
    module = str(meta.get("module", ""))
    for kind, tol_key, prefix, checker in KINDS:
        if name.startswith(prefix):
            return kind, TOLERANCES.get(tol_key), checker
    if "UNetModel" in module and "ScaleU" not in module:
        return "unet_end_to_end", None, None
    for kind, tol_key, needle, checker in (("position_net", "position_net", "UniFusion", check_position_net),
                                           ("fuser", "fuser", "GatedSelfAttentionDense", check_fuser),
                                           ("scaleu", "scaleu", "ScaleU", check_scaleu),
                                           ("fourier_embedder", "fourier_embedder", "FourierEmbedder", check_fourier)):
        if needle in module:
            return kind, TOLERANCES[tol_key], checker
    return "unknown", None, None


def run(folder: Path, out=sys.stdout) -> int:
    """Run every case of `folder`/index.json, print one line each; return the number of failures."""
    try:
        index = json.loads((folder / "index.json").read_text())
    except (OSError, ValueError) as exc:
        print(f"cannot read {folder / 'index.json'}: {exc}", file=out)
        return 1
    ctx = Context(folder, index)
    failures = 0
    for name in index.get("cases", []):
        try:
            meta, tensors = ctx.load(name)
        except (OSError, ValueError) as exc:
            print(f"{name:32s} {'?':18s} FAIL (cannot load: {exc})", file=out)
            failures += 1
            continue
        kind, tol, checker = classify(name, meta)
        if kind == "unet_end_to_end":
            print(f"{name:32s} {kind:18s} {SKIP_UNET}", file=out)
            continue
        if kind == "fuser_objs":
            ok = "in.objs" in tensors
            failures += not ok
            print(f"{name:32s} {kind:18s} {'DATA (shared fuser input)' if ok else 'FAIL (no in.objs)'}", file=out)
            continue
        if checker is None:
            print(f"{name:32s} {kind:18s} FAIL (unknown case kind)", file=out)
            failures += 1
            continue
        try:
            err = checker(meta, tensors, ctx)
        except Exception as exc:  # any problem with a case is that case failing, never a crash
            print(f"{name:32s} {kind:18s} FAIL ({type(exc).__name__}: {exc})", file=out)
            failures += 1
            continue
        ok = err <= tol
        failures += not ok
        print(f"{name:32s} {kind:18s} max_abs_err={err:.3g} tol={tol:g} {'PASS' if ok else 'FAIL'}", file=out)
    print(f"{failures} failure(s)", file=out)
    return failures


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m tools.verify DIR", file=sys.stderr)
        return 2
    torch.set_grad_enabled(False)
    return 1 if run(Path(argv[0])) else 0


if __name__ == "__main__":
    sys.exit(main())
