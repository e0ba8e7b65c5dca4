"""Write workflows/Core box canvas (ComfyUI 2026) - InstanceDiffusion.json: core Create Bounding Boxes <-> our layout (issue 16)."""
# Needs a 2026 host that has the Create Bounding Boxes node (ComfyUI >= 0.27 with PR #14724's `bboxes` input):
# COMFYUI_PATH=/path/to/ComfyUI python scripts/build_bounding_boxes_workflow.py
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts.build_workflows import CKPT, CORE_CANVAS, INSTDIFF, NEGATIVE, Graph, file_stem  # noqa: E402
from scripts.headless import HostServer  # noqa: E402
from scripts.hostenv import REPO  # noqa: E402

CAPTION = "a red vintage car parked in front of a bakery with a SALE sign, photo"
# What the canvas widget stores (x, y, width, height in canvas pixels + metadata {type, text, desc, palette}).
CANVAS = [
    {"x": 64, "y": 352, "width": 576, "height": 320,
     "metadata": {"type": "obj", "text": "", "desc": "a red vintage car", "palette": ["#c81e1e"]}},
    {"x": 96, "y": 32, "width": 832, "height": 288,
     "metadata": {"type": "obj", "text": "", "desc": "a bakery shop front", "palette": []}},
    {"x": 672, "y": 400, "width": 256, "height": 160,
     "metadata": {"type": "text", "text": "SALE", "desc": "a sign that says SALE", "palette": []}},
]
# One instance drawn in our editor next to the seeds from the canvas.
OWN = {"caption": "a black cat sitting on the pavement", "box": [380, 300, 96, 72]}
NOTE = (
    "Core box canvas <-> InstanceDiffusion (ComfyUI 2026 with the Create Bounding Boxes node).\n"
    "1. Draw boxes on 'Create Bounding Boxes' and describe each one (description; a text box's text is used when "
    "the description is empty). Its 'elements' output carries the boxes with their descriptions into 'Layout from "
    "detections' (its BOUNDING_BOX output has no descriptions; connect it to 'bounding_boxes' and write the "
    "captions instead).\n"
    "2. 'Layout from detections' -> the Layout node's seed_layout: run once and the boxes appear in our editor; "
    "refine them there, add points, scribbles, polygons or masks (the cat here is drawn in our editor).\n"
    "3. 'Layout to Bounding Boxes' sends the final layout back to a second canvas ('bboxes' input): it shows our "
    "boxes with their captions (first frame), e.g. to hand them to other box-based nodes.\n"
    "The 2024 host has neither core box type nor the canvas node; there, use boxes_json or the editor."
)


def build(info: dict) -> dict:
    g = Graph()  # the tall canvases come last in their columns (Graph stacks nodes 300 px apart)
    ckpt = g.add("CheckpointLoaderSimple", 0, ckpt_name=CKPT)
    idm = g.add("LoadInstanceDiffusion", 0, model_name=INSTDIFF, weights="ema")
    canvas = g.add("CreateBoundingBoxes", 0, width=1024, height=768)
    dets = g.add("InstanceDiffusionLayoutFromDetections", 1, width=512, height=384, caption=CAPTION,
                 elements=(canvas, 2))
    own = json.dumps({"schema": "instdiff.layout", "version": 1, "width": 512, "height": 384, "caption": "",
                      "instances": [OWN]})
    lay = g.add("InstanceDiffusionLayout", 1, width=512, height=384, caption="", layout_json=own,
                seed_layout=(dets, 0))
    back = g.add("InstanceDiffusionLayoutToBoundingBoxes", 1, layout=(lay, 0), frame=0, round_to_pixels=True)
    echo = g.add("CreateBoundingBoxes", 6, width=512, height=384, bboxes=(back, 0))
    g.add("SaveImage", 7, images=(echo, 0), filename_prefix="InstanceDiffusion_core_canvas")
    tok = g.add("InstanceDiffusionTokenizer", 2, clip=(ckpt, 1), layout=(lay, 0), instancediffusion=(idm, 0),
                config="auto", sample_seed=0)
    patched = g.add("ApplyInstanceDiffusion", 2, model=(ckpt, 0), instancediffusion=(idm, 0),
                    instance_conditioning=(tok, 0), grounding_full=0.8, grounding_decay=0.0, scaleu=True,
                    masked_attention=False)
    pos = g.add("CLIPTextEncode", 3, text=CAPTION, clip=(ckpt, 1))
    neg = g.add("CLIPTextEncode", 3, text=NEGATIVE, clip=(ckpt, 1))
    lat = g.add("EmptyLatentImage", 3, width=512, height=384, batch_size=1)
    sampled = g.add("InstanceDiffusionKSampler", 4, model=(patched, 0), seed=42, steps=30, cfg=7.5,
                    sampler_name="dpmpp_2m", scheduler="normal", positive=(pos, 0), negative=(neg, 0),
                    latent_image=(lat, 0), denoise=1.0, mis=0.36, max_batch=0)
    image = g.add("VAEDecode", 4, samples=(sampled, 0), vae=(ckpt, 2))
    g.add("SaveImage", 5, images=(image, 0), filename_prefix="InstanceDiffusion")
    pic = g.add("InstanceDiffusionLayoutPreview", 5, layout=(lay, 0), image=(image, 0))
    g.add("SaveImage", 5, images=(pic, 0), filename_prefix="InstanceDiffusion_layout")
    wf = g.to_ui(info, NOTE)
    # The canvas's own widgets (BOUNDING_BOXES values, after width and height): editor_state, last_incoming.
    for node in wf["nodes"]:
        if node["type"] == "CreateBoundingBoxes":
            node["widgets_values"] += [CANVAS if node["id"] == canvas else [], []]
            node["size"] = [360, 560]
    return wf


def main():
    with HostServer() as host:
        info = host.object_info
    if "CreateBoundingBoxes" not in info:
        raise SystemExit("this host has no Create Bounding Boxes node; point COMFYUI_PATH at a 2026 ComfyUI")
    out = REPO / "workflows" / f"{file_stem(CORE_CANVAS)}.json"
    out.write_text(json.dumps(build(info), indent=1) + "\n")
    print("wrote", out)


if __name__ == "__main__":
    main()
