"""Layout Preview captions: Pillow's scalable default font sized by the image, legible on any background."""
import importlib

import numpy as np
import pytest
from PIL import Image

from instdiff_model.layout import Instance, Layout


@pytest.fixture(scope="module")
def preview(pack):
    return importlib.import_module(pack.__name__ + ".nodes.preview")


def label_pixels(pic: np.ndarray, col: tuple):
    """The caption's backing box (the pixels exactly in the instance colour, top-left label) and, inside it,
    the text pixels (far from that colour)."""
    exact = np.all(pic == np.array(col), axis=-1)
    rows, cols = np.nonzero(exact)
    box = pic[rows.min():rows.max() + 1, cols.min():cols.max() + 1].astype(float)
    text = np.abs(box - np.array(col, float)).max(axis=-1) > 60
    return box, text


def contrast(a, b) -> float:
    """WCAG 2 contrast ratio of two sRGB colours."""
    def lum(c):
        lin = [v / 255 / 12.92 if v <= 10 else ((v / 255 + 0.055) / 1.055) ** 2.4 for v in c]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def draw_masked_caption(preview, side: int, color: str, background=None):
    """One mask instance (the caption sits over its tinted fill) on a side x side layout."""
    mask = np.zeros((side, side), bool)
    mask[side // 4: side // 2, side // 4: 3 * side // 4] = True
    lay = Layout(side, side, "", [Instance("Hg a caption", mask=mask, color=color)])
    bg = Image.new("RGB", (side, side), background) if background else None
    return np.asarray(preview.draw_layout(lay, bg))


def test_caption_height_follows_the_image_size(preview):
    heights = {}
    for side in (512, 1024, 2048):
        _, text = label_pixels(draw_masked_caption(preview, side, "#4363d8"), (0x43, 0x63, 0xd8))
        rows = np.nonzero(text.any(axis=1))[0]
        heights[side] = rows.max() - rows.min() + 1
    # The old fixed bitmap font was 11 px high at every size.
    assert heights[1024] >= 20 and heights[2048] >= 40
    assert 1.7 <= heights[1024] / heights[512] <= 2.3 and 1.7 <= heights[2048] / heights[1024] <= 2.3


@pytest.mark.parametrize("color", ["#000075", "#800000", "#fffac8", "#ffe119", "#a9a9a9", "#4363d8"])
@pytest.mark.parametrize("background", [None, (0, 0, 0), (255, 255, 255), (255, 225, 25)])
def test_caption_text_contrasts_with_what_is_behind_it(preview, color, background):
    col = tuple(int(color[k:k + 2], 16) for k in (1, 3, 5))
    box, text = label_pixels(draw_masked_caption(preview, 512, color, background), col)
    assert text.sum() > 50, "the caption's text pixels"
    # the strongest text pixels (glyph cores, not anti-aliased edges) against the backing box colour
    dist = np.abs(box - np.array(col, float)).max(axis=-1)
    core = box[dist >= np.percentile(dist[text], 90)]
    assert contrast(tuple(core.mean(axis=0)), col) >= 4.5
