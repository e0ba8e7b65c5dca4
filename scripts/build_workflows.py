"""Regenerate workflows/*.json (UI format, as users share them) and their thumbnails from compact graph specs; needs the test host."""
import io
import json
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts.headless import HostServer, _widget_slots, ui_to_api  # noqa: E402
from scripts.hostenv import REPO  # noqa: E402

CKPT = "v1-5-pruned-emaonly-fp16.safetensors"  # the SD1.5 file of ComfyUI's own default workflow
INSTDIFF = "instancediffusion_sd15.pth"  # the official release, read directly by Load InstanceDiffusion
REFINER = "sd_xl_refiner_1.0.safetensors"
# What the 2026 frontend's missing-models dialog offers to download: a loader node's properties.models entries
# {name, url, directory} (frontend workflowSchema.ts zModelFile; url on huggingface.co, name with a model suffix,
# directory a registered model folder).
MODELS = {
    CKPT: ("https://huggingface.co/Comfy-Org/stable-diffusion-v1-5-archive/resolve/main/"
           "v1-5-pruned-emaonly-fp16.safetensors", "checkpoints"),
    INSTDIFF: ("https://huggingface.co/xudongw/InstanceDiffusion/resolve/main/instancediffusion_sd15.pth",
               "instancediffusion"),
    REFINER: ("https://huggingface.co/stabilityai/stable-diffusion-xl-refiner-1.0/resolve/main/"
              "sd_xl_refiner_1.0.safetensors", "checkpoints"),
}
LOADERS = {"CheckpointLoaderSimple": "ckpt_name", "LoadInstanceDiffusion": "model_name"}
NEGATIVE = "worst quality, low quality, bad anatomy, watermark, text, blurry"
OFFICIAL_NEGATIVE = ("longbody, lowres, bad anatomy, bad hands, missing fingers, extra digit, fewer digits, cropped, "
                     "worst quality, low quality")  # official inference.py --negative_prompt default


def layout(caption, instances, width=512, height=512):
    return json.dumps({"schema": "instdiff.layout", "version": 1, "width": width, "height": height,
                       "caption": caption, "instances": instances}, indent=1)


class Graph:
    """Nodes as (type, {input: value or (node, slot)}); laid out in columns in insertion order."""

    def __init__(self):
        self.nodes = []

    def add(self, type_, column, **inputs):
        self.nodes.append((type_, column, inputs))
        return len(self.nodes)

    def to_ui(self, info: dict, note: str) -> dict:
        ui_nodes, links, rows = [], [], {}
        outputs = {}
        for nid, (type_, column, inputs) in enumerate(self.nodes, start=1):
            spec = info[type_]
            row = rows.get(column, 0)
            rows[column] = row + 1
            node = {"id": nid, "type": type_, "pos": [40 + 380 * column, 40 + 300 * row], "size": [340, 260],
                    "flags": {}, "order": nid - 1, "mode": 0, "inputs": [], "outputs": [],
                    "properties": {"Node name for S&R": type_}, "widgets_values": []}
            for section in ("required", "optional"):
                for name, s in spec["input"].get(section, {}).items():
                    value = inputs.get(name)
                    if isinstance(value, tuple):
                        links.append([len(links) + 1, value[0], value[1], nid, len(node["inputs"]), None])
                        node["inputs"].append({"name": name, "type": None, "link": len(links)})
                        outputs.setdefault((value[0], value[1]), []).append(len(links))
                        if _widget_slots(name, s):
                            node["inputs"][-1]["widget"] = {"name": name}
                    slots = _widget_slots(name, s)
                    if slots:
                        if value is None or isinstance(value, tuple):
                            value = s[1].get("default") if len(s) > 1 and isinstance(s[1], dict) else None
                            if value is None and isinstance(s[0], list):
                                value = s[0][0]
                        node["widgets_values"].append(value)
                        node["widgets_values"].extend(["fixed"] * (slots - 1))
            node["outputs"] = [{"name": n, "type": t, "links": [], "slot_index": i}
                               for i, (n, t) in enumerate(zip(spec["output_name"], spec["output"]))]
            ui_nodes.append(node)
        for (src, slot), ids in outputs.items():
            ui_nodes[src - 1]["outputs"][slot]["links"] = ids
        for link in links:
            link[5] = ui_nodes[link[1] - 1]["outputs"][link[2]]["type"]
            ui_nodes[link[3] - 1]["inputs"][link[4]]["type"] = link[5]
        ui_nodes.append({"id": len(ui_nodes) + 1, "type": "Note", "pos": [40, -260], "size": [760, 220], "flags": {},
                         "order": len(ui_nodes), "mode": 0, "properties": {"text": ""}, "widgets_values": [note]})
        for node in ui_nodes:
            with_models(node)
        return {"last_node_id": len(ui_nodes), "last_link_id": len(links), "nodes": ui_nodes, "links": links,
                "groups": [], "config": {}, "extra": {}, "version": 0.4}


def with_models(node: dict) -> dict:
    """A loader node with properties.models for the file its first widget names (when that file is downloadable)."""
    name = node["widgets_values"][0] if node["type"] in LOADERS and node["widgets_values"] else None
    if name in MODELS:
        url, directory = MODELS[name]
        node["properties"]["models"] = [{"name": name, "url": url, "directory": directory}]
    return node


def base(g, caption, instances, *, mask_nodes=None, lora=False, masked=False, width=512, height=512,
         layout_nodes=None):
    """Checkpoint + InstanceDiffusion + layout + tokenizer + Apply; returns (patched model, clip, vae, layout)."""
    ckpt = g.add("CheckpointLoaderSimple", 0, ckpt_name=CKPT)
    model, clip = (ckpt, 0), (ckpt, 1)
    stock_clip = clip  # phrase features come from stock CLIP-L, as the position net was trained on
    if lora:
        lo = g.add("LoraLoader", 0, model=model, clip=clip, lora_name="your_sd15_lora.safetensors",
                   strength_model=0.8, strength_clip=0.8)
        model, clip = (lo, 0), (lo, 1)
    idm = g.add("LoadInstanceDiffusion", 0, model_name=INSTDIFF, weights="ema")
    if layout_nodes:
        lay_out = layout_nodes(g)
    else:
        lay = g.add("InstanceDiffusionLayout", 1, width=width, height=height, caption=caption,
                    layout_json=layout(caption, instances, width, height))
        lay_out = (lay, 0)
    for add in mask_nodes or []:
        lay_out = add(g, lay_out)
    tok = g.add("InstanceDiffusionTokenizer", 2, clip=stock_clip, layout=lay_out, instancediffusion=(idm, 0),
                config="auto", sample_seed=0)
    patched = g.add("ApplyInstanceDiffusion", 2, model=model, instancediffusion=(idm, 0),
                    instance_conditioning=(tok, 0), grounding_full=0.8, grounding_decay=0.0, scaleu=True,
                    masked_attention=masked)
    return (patched, 0), clip, (ckpt, 2), lay_out


SAMPLING = dict(seed=42, steps=30, cfg=7.5, sampler_name="dpmpp_2m", scheduler="normal")
OFFICIAL = dict(seed=0, steps=50, cfg=7.5, sampler_name="ddim", scheduler="ddim_uniform")


def finish(g, model, clip, vae, lay_out, caption, *, mis=0.36, sampling=SAMPLING, negative=NEGATIVE, width=512,
           height=512, refiner=False, batch=1):
    """Prompts, the sampler (the multi-instance sampler unless mis is None: stock KSampler), decode and save."""
    pos = g.add("CLIPTextEncode", 3, text=caption, clip=clip)
    neg = g.add("CLIPTextEncode", 3, text=negative, clip=clip)
    lat = g.add("EmptyLatentImage", 3, width=width, height=height, batch_size=batch)
    common = dict(model=model, positive=(pos, 0), negative=(neg, 0), latent_image=(lat, 0), denoise=1.0, **sampling)
    if mis is None:
        s = g.add("KSampler", 4, **common)
    else:
        s = g.add("InstanceDiffusionKSampler", 4, mis=mis, max_batch=0, **common)
    img = g.add("VAEDecode", 4, samples=(s, 0), vae=vae)
    g.add("SaveImage", 5, images=(img, 0), filename_prefix="InstanceDiffusion")
    pic = g.add("InstanceDiffusionLayoutPreview", 5, layout=lay_out, image=(img, 0))
    g.add("SaveImage", 5, images=(pic, 0), filename_prefix="InstanceDiffusion_layout")
    if refiner:
        ref = g.add("CheckpointLoaderSimple", 6, ckpt_name=REFINER)
        rpos = g.add("CLIPTextEncode", 6, text=caption, clip=(ref, 1))
        rneg = g.add("CLIPTextEncode", 6, text=NEGATIVE, clip=(ref, 1))
        up = g.add("ImageScale", 7, image=(img, 0), upscale_method="lanczos", width=1024, height=1024, crop="disabled")
        enc = g.add("VAEEncode", 7, pixels=(up, 0), vae=(ref, 2))
        rs = g.add("KSampler", 7, model=(ref, 0), seed=42, steps=30, cfg=7.5, sampler_name="dpmpp_2m",
                   scheduler="karras", positive=(rpos, 0), negative=(rneg, 0), latent_image=(enc, 0), denoise=0.35)
        rimg = g.add("VAEDecode", 8, samples=(rs, 0), vae=(ref, 2))
        g.add("SaveImage", 8, images=(rimg, 0), filename_prefix="InstanceDiffusion_refined")


def mask_from_rect(caption, x, y, w, h, width=512, height=512):
    """Stock nodes paint a rectangle-ish mask (SolidMask + MaskComposite); swap in Load Image (as Mask) for your own."""
    def add(g, lay_out):
        empty = g.add("SolidMask", 1, value=0.0, width=width, height=height)
        blob = g.add("SolidMask", 1, value=1.0, width=w, height=h)
        m = g.add("MaskComposite", 1, destination=(empty, 0), source=(blob, 0), x=x, y=y, operation="add")
        return (g.add("InstanceDiffusionAddMask", 2, layout=lay_out, caption=caption, mask=(m, 0), threshold=0.5), 0)
    return add


def add_instance_chain(g):
    """An empty Layout node and one Add Instance node per format (no drawing: every value is a widget)."""
    lay = g.add("InstanceDiffusionLayout", 1, width=512, height=512, caption=SCENE, layout_json=layout(SCENE, []))
    box = g.add("InstanceDiffusionAddBox", 1, layout=(lay, 0), caption="a corgi wearing a red scarf",
                x=40, y=230, width=200, height=250)
    point = g.add("InstanceDiffusionAddPoint", 2, layout=(box, 0), caption="a white cat sitting", x=375, y=365)
    shape = g.add("InstanceDiffusionAddShape", 2, layout=(point, 0), caption="a hot air balloon", kind="polygon",
                  points="330,30 450,30 420,190 360,190")
    return (shape, 0)


DEMO = {"caption": "a cat, a dog and a robin on a wooden fence in a garden, photo", "width": 512, "height": 512,
        "annos": [{"caption": "a ginger cat sitting", "category_name": "cat", "bbox": [30, 200, 170, 230], "mask": []},
                  {"caption": "a brown dog", "category_name": "dog", "bbox": [240, 230, 230, 240], "mask": []},
                  {"caption": "a small robin", "category_name": "bird", "bbox": [230, 90, 80, 70], "mask": []}]}


def import_layout(g):
    """Import Layout (official demo JSON) as the Layout node's seed: the imported boxes show in the editor."""
    imp = g.add("InstanceDiffusionImportLayout", 1, text=json.dumps(DEMO, indent=1), format="official demo",
                coco_image_id=-1, caption="")
    lay = g.add("InstanceDiffusionLayout", 1, width=512, height=512, caption="", layout_json=layout("", []),
                seed_layout=(imp, 0))
    return (lay, 0)


FRAMES = 8
KEYFRAMES = [{"frame": 0, "layout": json.loads(layout("a red ball and a blue cube on a table", [
                 {"caption": "a red ball", "box": [20, 300, 120, 120]}, {"caption": "a blue cube", "box": [360, 280, 130, 130]}]))},
             {"frame": FRAMES - 1, "layout": json.loads(layout("a red ball and a blue cube on a table", [
                 {"caption": "a red ball", "box": [370, 120, 120, 120]}, {"caption": "a blue cube", "box": [30, 290, 130, 130]}]))}]


def keyframes(g):
    """Layout Keyframes: the ball flies over the cube while the cube slides left, one layout per latent."""
    return (g.add("InstanceDiffusionLayoutKeyframes", 1, keyframes=json.dumps(KEYFRAMES, indent=1), frames=FRAMES), 0)


BOXES = [{"caption": "a corgi wearing a red scarf", "box": [40, 230, 200, 250]},
         {"caption": "a white cat sitting", "box": [280, 250, 190, 230]},
         {"caption": "a hot air balloon", "box": [300, 20, 160, 180]}]
SCENE = "a corgi and a white cat in a sunny park, a hot air balloon in the sky, photo"

MIS_NOTE = (" Sampled with the multi-instance sampler (MIS 0.36, the official default); set mis to 0 for the stock "
            "KSampler's speed.")

WORKFLOWS = {
    "instancediffusion_official_settings": (
        "Official settings: the paper's inference.py as closely as ComfyUI allows. Multi-instance sampler (mis 0.36), "
        "50 steps of ddim on the ddim_uniform schedule (the official timesteps; ComfyUI has no PLMS, ddim is its "
        "deterministic counterpart), cfg 7.5 (inference.py's default; its README demos pass 5), the official negative "
        "prompt, grounding on for the first 80% of the "
        "steps (grounding_full 0.8 as the official README demos pass --alpha 0.8; inference.py's own default is "
        "0.75), ScaleU on, masked attention off, SD1.5 + the official instancediffusion_sd15 weights. Batch 1 "
        "(official: 8 images).",
        dict(instances=BOXES, sampling=OFFICIAL, negative=OFFICIAL_NEGATIVE)),
    "instancediffusion_boxes": (
        "Boxes: every instance is a caption + a box. Draw boxes in the layout editor (or edit layout_json). Official "
        "settings: grounding on for the first 80% of steps (grounding_full 0.8), ScaleU on." + MIS_NOTE,
        dict(instances=BOXES)),
    "instancediffusion_points": (
        "Points: one point per instance (the 'point' test config drops boxes). Points are the weakest location "
        "hint; use several instances or boxes for more control." + MIS_NOTE,
        dict(instances=[{"caption": b["caption"], "point": [b["box"][0] + b["box"][2] // 2, b["box"][1] + b["box"][3] // 2]}
                        for b in BOXES])),
    "instancediffusion_scribbles": (
        "Scribbles: free-hand strokes per instance. With scribbles present the tokenizer uses the official "
        "'scribble' config (the default sd15 config would ignore them)." + MIS_NOTE,
        dict(instances=[{"caption": "a winding river", "scribble": [[[10, 480], [120, 400], [260, 430], [400, 360], [500, 380]]]},
                        {"caption": "a flock of birds", "scribble": [[[300, 80], [340, 60], [380, 90], [420, 70]]]}],
             caption="a landscape with a winding river and birds in the sky, painting")),
    "instancediffusion_polygons": (
        "Polygons: each instance is a closed outline; its mask, boundary and interior samples are derived as in "
        "the official preprocessing." + MIS_NOTE,
        dict(instances=[{"caption": "a red barn", "polygon": [[[60, 300], [200, 200], [340, 300], [340, 480], [60, 480]]]},
                        {"caption": "a tall pine tree", "polygon": [[[400, 480], [440, 120], [490, 480]]]}],
             caption="a red barn and a tall pine tree on a farm, photo")),
    "instancediffusion_masks": (
        "Masks: per-instance masks (here painted with stock mask nodes; connect Load Image (as Mask) or a segmenter "
        "instead). The mask tokens go through the ConvNeXt mask branch." + MIS_NOTE,
        dict(instances=[], mask_nodes=[mask_from_rect("a golden retriever", 40, 200, 220, 280),
                                       mask_from_rect("a wooden bench", 270, 300, 230, 180)],
             caption="a golden retriever next to a wooden bench in a garden, photo")),
    "instancediffusion_all_formats": (
        "All formats in one layout: box, point, scribble, polygon and mask instances together." + MIS_NOTE,
        dict(instances=[BOXES[0], {"caption": "a white cat sitting", "point": [370, 360]},
                        {"caption": "a stone path", "scribble": [[[250, 500], [260, 420], [240, 330]]]},
                        {"caption": "a hot air balloon", "polygon": [[[330, 30], [450, 30], [420, 190], [360, 190]]]}],
             mask_nodes=[mask_from_rect("a flower bed", 0, 440, 512, 72)], caption=SCENE)),
    "instancediffusion_multi_instance_sampler": (
        "Multi-instance sampler (MIS): for the first 36% of steps (official default) each instance is also denoised "
        "alone with its caption as the prompt, in one batch with the full image; the latents are averaged, then "
        "sampling finishes normally. Shown here with an ancestral sampler (euler_ancestral): a latent's trajectories "
        "share its per-step noise, so ancestral and SDE samplers keep their noise level. Costs about 1 + n*mis "
        "times a plain run; lower max_batch if memory is short.",
        dict(instances=BOXES, mis=0.36, sampling=dict(SAMPLING, sampler_name="euler_ancestral"))),
    "instancediffusion_masked_attention": (
        "Instance-masked attention: inside the fusers each image token attends only to its own instance's tokens "
        "(off in the official release; an option here). Helps keep attributes from leaking between instances."
        + MIS_NOTE,
        dict(instances=BOXES, masked=True)),
    "instancediffusion_with_lora": (
        "Composing with a LoRA: Load LoRA before Apply InstanceDiffusion (any SD1.5 LoRA). Replace "
        "your_sd15_lora.safetensors with one of yours. The InstanceDiffusion tokenizer takes the checkpoint's own "
        "CLIP, not the LoRA'd one: the position net was trained on stock CLIP-L phrase features; the prompts use "
        "the LoRA'd CLIP." + MIS_NOTE,
        dict(instances=BOXES, lora=True)),
    "instancediffusion_sdxl_refiner_cascade": (
        "The official cascade option: the SD1.5 InstanceDiffusion image refined by the SDXL refiner (img2img at "
        "strength 0.35, at 1024x1024). Needs sd_xl_refiner_1.0.safetensors in models/checkpoints." + MIS_NOTE,
        dict(instances=BOXES, refiner=True)),
    "instancediffusion_add_instance_nodes": (
        "Add Instance nodes: a layout built without drawing. An empty Layout node, then one Add Instance node per "
        "instance (box, point, polygon here; Add Instance (mask) takes a MASK). Every value is a widget, so other "
        "nodes can drive them (convert a widget to an input)." + MIS_NOTE,
        dict(instances=[], layout_nodes=add_instance_chain)),
    "instancediffusion_import_layout": (
        "Import Layout: paste an official InstanceDiffusion demo JSON (demos/*.json) or COCO annotations into "
        "Import Layout. It feeds the Layout node's seed_layout, so after one run the imported boxes appear in the "
        "editor, where you can move, re-caption or delete them (your edits stay on top when the import changes)."
        + MIS_NOTE,
        dict(instances=[], layout_nodes=import_layout, caption=DEMO["caption"])),
    "instancediffusion_video_keyframes": (
        f"Keyframed video layout: Layout Keyframes gives one layout per latent ({FRAMES} frames here): the red "
        "ball moves from bottom left to top right, the blue cube slides left; boxes are interpolated between "
        "keyframes. The latent batch has the same size (batch_size). For a real animation put AnimateDiff (or "
        "another motion model) on the MODEL before Apply InstanceDiffusion; context windows read their frames' "
        "layouts." + MIS_NOTE,
        dict(instances=[], layout_nodes=keyframes, caption=KEYFRAMES[0]["layout"]["caption"], batch=FRAMES)),
}
# The templates browser (frontend 1.58: useTemplateWorkflows getTemplateTitle, title = the file name for a custom
# node's templates; core /workflow_templates lists file names only) titles a workflow by its file name: the file is
# "<title> - InstanceDiffusion.json" (the title first: the card shows one line), its thumbnail "<same>.jpg" draws the
# title too. Keys: the workflows' ids.
TITLES = {
    "instancediffusion_official_settings": "Official settings (start here)",
    "instancediffusion_boxes": "Boxes",
    "instancediffusion_points": "Points",
    "instancediffusion_scribbles": "Scribbles",
    "instancediffusion_polygons": "Polygons",
    "instancediffusion_masks": "Masks",
    "instancediffusion_all_formats": "All formats in one layout",
    "instancediffusion_multi_instance_sampler": "Multi-instance sampler",
    "instancediffusion_masked_attention": "Instance-masked attention",
    "instancediffusion_with_lora": "With a LoRA",
    "instancediffusion_sdxl_refiner_cascade": "SDXL refiner cascade",
    "instancediffusion_add_instance_nodes": "Add Instance nodes",
    "instancediffusion_import_layout": "Import Layout (demo JSON, COCO)",
    "instancediffusion_video_keyframes": "Keyframed video layout",
    "instancediffusion_bounding_boxes_2026": "Core box canvas (ComfyUI 2026)",
    "instancediffusion_edit_one_instance": "Edit one instance, keep the rest",
    "instancediffusion_iterative_generation": "Iterative generation",
}
THUMB = 384


def file_stem(workflow_id: str) -> str:
    """The shipped file name (without .json / .jpg) of a workflow id: its title, readable in the templates browser."""
    return f"{TITLES[workflow_id]} - InstanceDiffusion"


def layout_pictures(host, workflow: dict) -> list:
    """The workflow's own (last) Layout Preview, run on the host without the image underneath: one PIL image per
    frame."""
    prompt = ui_to_api(workflow, host.object_info)
    preview = [nid for nid, n in prompt.items() if n["class_type"] == "InstanceDiffusionLayoutPreview"][-1]
    keep, todo = set(), [preview]
    while todo:
        nid = todo.pop()
        if nid not in keep:
            keep.add(nid)
            todo += [v[0] for k, v in prompt[nid]["inputs"].items() if isinstance(v, list) and k != "image"]
    sub = {nid: prompt[nid] for nid in keep}
    sub[preview]["inputs"].pop("image", None)
    sub["thumb"] = {"class_type": "SaveImage", "inputs": {"images": [preview, 0], "filename_prefix": "thumb"}}
    return [Image.open(path).convert("RGB") for path in sorted(host.output_files(host.run(sub), "thumb"))]


def thumbnail(pictures: list, title: str) -> bytes:
    """A square JPEG card: the layout (first and last frame side by side for a per-frame layout) and the title."""
    frames = pictures if len(pictures) == 1 else [pictures[0], pictures[-1]]
    card = Image.new("RGB", (THUMB, THUMB), (32, 32, 32))
    band = 44
    w = THUMB // len(frames)
    for k, pic in enumerate(frames):
        pic = pic.copy()
        pic.thumbnail((w - 8, THUMB - band - 8))
        card.paste(pic, (k * w + (w - pic.width) // 2, (THUMB - band - pic.height) // 2))
    draw = ImageDraw.Draw(card)
    draw.rectangle((0, THUMB - band, THUMB, THUMB), fill=(20, 20, 20))
    draw.text((12, THUMB - band + 10), title, fill=(240, 240, 240), font=ImageFont.load_default(size=20))
    out = io.BytesIO()
    card.save(out, "JPEG", quality=88)
    return out.getvalue()



def masked_rerun(g, column, first, caption, instances):
    """One edit stage: a layout of `instances`, the Layout Difference mask (the previous layout -> it), the previous
    latent re-generated inside it only (same seed), kept exactly outside it, decoded and composited over the
    previous image; returns the stage's outputs as `first_image` does."""
    idm, clip = first["instancediffusion"], first["clip"]
    lay = g.add("InstanceDiffusionLayout", column, width=512, height=512, caption=caption,
                layout_json=layout(caption, instances))
    tok = g.add("InstanceDiffusionTokenizer", column, clip=clip, layout=(lay, 0), instancediffusion=idm,
                config="auto", sample_seed=0)
    patched = g.add("ApplyInstanceDiffusion", column + 1, model=first["model"], instancediffusion=idm,
                    instance_conditioning=(tok, 0), grounding_full=0.8, grounding_decay=0.0, scaleu=True,
                    masked_attention=False)
    diff = g.add("InstanceDiffusionLayoutDifference", column + 1, before=first["layout"], after=(lay, 0), grow=16,
                 feather=0, frame=0)
    noised = g.add("SetLatentNoiseMask", column + 1, samples=first["latent"], mask=(diff, 0))
    s = g.add("InstanceDiffusionKSampler", column + 2, model=(patched, 0), positive=first["positive"],
              negative=first["negative"], latent_image=(noised, 0), denoise=1.0, mis=0.36, max_batch=0,
              **SAMPLING)
    kept = g.add("LatentCompositeMasked", column + 2, destination=first["latent"], source=(s, 0), x=0, y=0,
                 resize_source=False, mask=(diff, 0))
    img = g.add("VAEDecode", column + 2, samples=(kept, 0), vae=first["vae"])
    final = g.add("ImageCompositeMasked", column + 3, destination=first["image"], source=(img, 0), x=0, y=0,
                  resize_source=False, mask=(diff, 0))
    g.add("SaveImage", column + 3, images=(final, 0), filename_prefix="InstanceDiffusion_edited")
    pic = g.add("InstanceDiffusionLayoutPreview", column + 3, layout=(lay, 0), image=(final, 0), mask=(diff, 0))
    g.add("SaveImage", column + 3, images=(pic, 0), filename_prefix="InstanceDiffusion_edit_layout")
    return dict(first, latent=(kept, 0), image=(final, 0), layout=(lay, 0))


def first_image(g, caption, instances):
    """The first generation (multi-instance sampler), its prompts, latent and image, for the edit stages."""
    model, clip, vae, lay_out = base(g, caption, instances)
    ckpt, idm = (next(i for i, node in enumerate(g.nodes, 1) if node[0] == t)
                 for t in ("CheckpointLoaderSimple", "LoadInstanceDiffusion"))
    pos = g.add("CLIPTextEncode", 3, text=caption, clip=clip)
    neg = g.add("CLIPTextEncode", 3, text=NEGATIVE, clip=clip)
    lat = g.add("EmptyLatentImage", 3, width=512, height=512, batch_size=1)
    s = g.add("InstanceDiffusionKSampler", 4, model=model, positive=(pos, 0), negative=(neg, 0),
              latent_image=(lat, 0), denoise=1.0, mis=0.36, max_batch=0, **SAMPLING)
    img = g.add("VAEDecode", 4, samples=(s, 0), vae=vae)
    g.add("SaveImage", 4, images=(img, 0), filename_prefix="InstanceDiffusion_first")
    return dict(model=(ckpt, 0), instancediffusion=(idm, 0), clip=clip, vae=vae, positive=(pos, 0),
                negative=(neg, 0), latent=(s, 0), image=(img, 0), layout=lay_out)


EDITED = [BOXES[0], BOXES[1], dict(BOXES[2], box=[40, 20, 160, 180])]  # the balloon moved to the left
STAGES = [BOXES[:1], BOXES[:2], BOXES]  # iterative generation: one more instance at each stage

EDIT_NOTES = {
    "instancediffusion_edit_one_instance": (
        "Edit one instance, keep the rest. Top: the first image. Bottom: the same layout with one instance changed "
        "(here the balloon moved left; move, resize, re-caption, add or delete instances in the second layout "
        "editor). Layout Difference gives the MASK of what the edit touches (old and new regions, grown 16 px); "
        "Set Latent Noise Mask re-generates only that part of the first latent, same seed and prompts; Latent "
        "Composite Masked and Image Composite Masked keep everything outside the mask exactly the first image's. "
        "Raise grow (or add feather) if the seam shows.", EDITED),
    "instancediffusion_iterative_generation": (
        "Iterative generation (paper, Figure 8): the same noise and prompt, one instance added at each stage. Each "
        "stage re-generates only where its new instance goes (Layout Difference against the previous stage's "
        "layout) and keeps the earlier instances exactly; chain more stages the same way.", STAGES),
}


def edit_workflow(name: str) -> Graph:
    g = Graph()
    first = first_image(g, SCENE, STAGES[0] if name.endswith("iterative_generation") else BOXES)
    stages = EDIT_NOTES[name][1]
    for n, instances in enumerate([stages] if name.endswith("edit_one_instance") else stages[1:]):
        first = masked_rerun(g, 5 + 4 * n, first, SCENE, instances)
    return g


def main():
    out = REPO / "workflows"
    out.mkdir(exist_ok=True)
    with HostServer() as host:
        info = host.object_info
        for name, (note, opts) in WORKFLOWS.items():
            g = Graph()
            caption = opts.get("caption", SCENE)
            model, clip, vae, lay_out = base(g, caption, opts["instances"], mask_nodes=opts.get("mask_nodes"),
                                             lora=opts.get("lora", False), masked=opts.get("masked", False),
                                             layout_nodes=opts.get("layout_nodes"))
            finish(g, model, clip, vae, lay_out, caption, mis=opts.get("mis", 0.36), refiner=opts.get("refiner", False),
                   sampling=opts.get("sampling", SAMPLING), negative=opts.get("negative", NEGATIVE),
                   batch=opts.get("batch", 1))
            wf = g.to_ui(info, note)
            (out / f"{file_stem(name)}.json").write_text(json.dumps(wf, indent=1) + "\n")
            (out / f"{file_stem(name)}.jpg").write_bytes(thumbnail(layout_pictures(host, wf), TITLES[name]))
            print("wrote", out / f"{file_stem(name)}.json", "and its thumbnail")
        for name, (note, _) in EDIT_NOTES.items():
            wf = edit_workflow(name).to_ui(info, note)
            (out / f"{file_stem(name)}.json").write_text(json.dumps(wf, indent=1) + "\n")
            (out / f"{file_stem(name)}.jpg").write_bytes(thumbnail(layout_pictures(host, wf), TITLES[name]))
            print("wrote", out / f"{file_stem(name)}.json", "and its thumbnail")
        core_canvas(host, out / f"{file_stem(CORE_CANVAS)}.json")


CORE_CANVAS = "instancediffusion_bounding_boxes_2026"


def core_canvas(host, path: Path) -> None:
    """The 2026 canvas workflow (built on a 2026 host by build_bounding_boxes_workflow.py): its loaders get this
    script's file names and properties.models; its thumbnail draws what its Layout node makes of the canvas
    (the canvas boxes at the layout's scale, captioned by their descriptions, then the editor's own instance),
    with our Layout Preview on this host."""
    from scripts import build_bounding_boxes_workflow as canvas
    wf = json.loads(path.read_text())
    for node in wf["nodes"]:
        if node["type"] in LOADERS:
            node["widgets_values"][0] = CKPT if node["type"] == "CheckpointLoaderSimple" else INSTDIFF
            with_models(node)
    path.write_text(json.dumps(wf, indent=1) + "\n")
    scale = 512 / 1024
    seeds = [{"caption": b["metadata"]["desc"] or b["metadata"]["text"],
              "box": [round(b[k] * scale) for k in ("x", "y", "width", "height")]} for b in canvas.CANVAS]
    g = Graph()
    lay = g.add("InstanceDiffusionLayout", 0, width=512, height=384, caption=canvas.CAPTION,
                layout_json=layout(canvas.CAPTION, seeds + [canvas.OWN], 512, 384))
    g.add("InstanceDiffusionLayoutPreview", 1, layout=(lay, 0))
    pictures = layout_pictures(host, g.to_ui(host.object_info, ""))
    path.with_suffix(".jpg").write_bytes(thumbnail(pictures, TITLES[CORE_CANVAS]))
    print("wrote", path, "and its thumbnail")


if __name__ == "__main__":
    main()
