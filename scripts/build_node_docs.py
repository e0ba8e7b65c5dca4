"""Write web/docs/<NodeClass>.md (the 2026 frontend's node help pages) from each node's tooltips, plus its use and a tip."""
# The frontend fetches /extensions/<pack folder>/docs/<NodeClass>/<locale>.md, then .../docs/<NodeClass>.md
# (src/services/nodeHelpService.ts); the host serves WEB_DIRECTORY at /extensions/<pack folder>/.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts.hostenv import REPO, import_pack  # noqa: E402

DOCS = REPO / "web" / "docs"

# Per node: what it is for (beyond the one-line description), and a tip.
PAGES = {
    "LoadInstanceDiffusion": (
        "Accepted files: the official `instancediffusion_sd15.pth` (read safely: no pickled code runs), a converted "
        ".safetensors, or logtd's split files `fusers.ckpt`, `position_net.ckpt`, `scaleu.ckpt`, either in one "
        "folder under `models/instancediffusion/` or where ComfyUI-Manager installs them "
        "(`models/instance_models/fuser_models/`, `positionnet_models/`, `scaleu_models/`, listed as "
        "`instance_models/`). A folder registered as `instance_models` in extra_model_paths.yaml is listed by its "
        "path. A split set with a file missing is listed with the missing file's name.",
        "Opened from a shared workflow with the weights missing, the 2026 frontend offers the download of "
        "`instancediffusion_sd15.pth` (into `models/instancediffusion/`); refresh the page afterwards."),
    "InstanceDiffusionLayout": (
        "Draw instances on the editor canvas: box, point, scribble, polygon or mask, each with its caption. The "
        "width, height and caption widgets override the JSON. With `seed_layout` connected, the output holds the "
        "seed's instances first (scaled to width x height), each replaced by your edit of it and without the ones "
        "you deleted, then your own instances. Edits are kept in `layout_json` (an instance with `\"seed\": k` "
        "replaces seed instance k; `\"seed_removed\"` lists deleted ones), so they survive re-runs while untouched "
        "seed instances follow the input. While nothing is drawn or deleted, the output takes the seed's size and "
        "(if caption is empty) its caption.",
        "Write the same scene in the positive prompt as in the caption, and keep the image size the latent's."),
    "InstanceDiffusionAddBox": (
        "Chain Add Instance nodes after a Layout node to build a layout without drawing, e.g. from numbers "
        "computed by other nodes.",
        "Boxes are the strongest location hint; use them for anything that must sit exactly in place."),
    "InstanceDiffusionAddPoint": (
        "A point says only where an instance is, not how large; the model chooses the extent.",
        "Points are the weakest hint: combine them with boxes, or the tokenizer's `point` config for points only."),
    "InstanceDiffusionAddShape": (
        "A scribble is one or more free strokes across the object; a polygon is a closed outline (its mask, "
        "boundary and interior samples are derived as in the official preprocessing).",
        "With scribbles present the tokenizer's auto config becomes the official `scribble` config (the default "
        "sd15 config would ignore them)."),
    "InstanceDiffusionAddMask": (
        "Any ComfyUI MASK works: Load Image (as Mask), a segmenter, or stock mask nodes. The mask goes through "
        "InstanceDiffusion's mask tokens (a ConvNeXt branch).",
        "The mask must have the layout's size; resize it first if it comes from another image."),
    "InstanceDiffusionImportLayout": (
        "Reads the official demo JSON (`demos/*.json`: caption + annos with boxes, masks as RLE, scribbles, "
        "points) or a COCO instances file (boxes in pixels, polygons, RLE masks). Boxes reaching outside the "
        "image are clamped and listed in `notes`.",
        "Connect `layout` to the Layout node's `seed_layout` to see and edit the import in the editor."),
    "InstanceDiffusionLayoutKeyframes": (
        "Each keyframe is `{\"frame\": n, \"layout\": {...}}` with the same instances in the same order; boxes "
        "and points are interpolated linearly, instance by instance, and held before the first and after the last "
        "keyframe. Latent i of the batch gets frame i (AnimateDiff context windows included).",
        "Set `frames` to the latent batch size and the Empty Latent Image's batch_size to the same number."),
    "InstanceDiffusionLayoutFromDetections": (
        "Imported in this order: core BOUNDING_BOX, core BOUNDING_BOXES (caption from metadata.desc, then "
        "metadata.text), Create Bounding Boxes `elements`, a box list (KJNodes BBOX, Florence-2 data, or "
        "`boxes_json`) read with `box_format`, Impact Pack SEGS (box + mask), and a MASK batch. Pixel boxes are "
        "in `source_image` pixels when it is connected, else in layout pixels; SEGS and masks carry their own "
        "size. Everything is scaled to the layout.",
        "Feed the result into the Layout node's `seed_layout`: after one run the boxes appear in the editor, "
        "where you can move and re-caption them."),
    "InstanceDiffusionLayoutToBoundingBoxes": (
        "Box metadata is `{type: obj, text: '', desc: caption, palette: [the instance's colour]}`, so Create "
        "Bounding Boxes' `bboxes` input shows our boxes with their captions (it reads the first frame). "
        "Instances without an area (points) are left out.",
        "Use `masks` with core mask nodes or a detailer to touch up one instance after generation."),
    "InstanceDiffusionTokenizer": (
        "Per frame, 184 grounding tokens (30 box, 30 point, 30 scribble, 30 polygon, 64 mask) from each "
        "instance's CLIP-L caption feature and location, plus the null tokens of the unconditional pass and each "
        "caption's text conditioning (the multi-instance sampler's per-instance prompts). `auto` picks the "
        "official test config from the formats present; `config_used` says which ran.",
        "Connect the checkpoint loader's own CLIP here even when the prompts use a LoRA'd CLIP."),
    "ApplyInstanceDiffusion": (
        "Adds a gated fuser to each of the 16 transformer blocks (grounding tokens on the positive pass, null "
        "tokens on the negative), ScaleU to the 12 output blocks, and optionally instance-masked attention. The "
        "gate follows the sampling progress (the noise level, as core's start/end percent): full for the first "
        "`grounding_full`, a linear fade over `grounding_decay`, then off. The official README demos pass "
        "--alpha 0.8 (our default); inference.py's own default is 0.75. Karras schedules ground fewer steps "
        "than the official step count (19 of 30 at 0.8).",
        "If instances appear but the image looks stiff, lower `grounding_full` (0.5-0.6); if instances drift "
        "from their boxes, raise it (0.9-1.0)."),
    "InstanceDiffusionKSampler": (
        "For the first `mis` fraction of the steps it denoises, from the same noise, the full prompt and layout "
        "plus one trajectory per instance (its caption as the prompt, the same negative, only its grounding), "
        "all in one batch, averages the latents, then finishes with the full conditioning. A latent's "
        "trajectories share its per-step noise, so ancestral / SDE / LCM samplers keep their noise level. "
        "Multistep samplers (dpmpp_2m, ...) restart their history at the switch.",
        "For a quick look set `mis` to 0 (the stock KSampler's speed); for the final image use 0.2-0.36."),
    "InstanceDiffusionLayoutDifference": (
        "Compare the layout a first image was made with (`before`) and an edited copy (`after`). Instances are "
        "matched by caption first (the k-th occurrence with the k-th), the rest by their place in the list; "
        "whatever is left was added or removed. Colours and list order do not count. The mask covers the old and "
        "the new region of every instance added, removed, moved, resized, re-captioned or re-weighted (a point: a "
        "square of 1/8 of the shorter side around it), grown by `grow` and faded over `feather` pixels; it is "
        "empty, with a note saying so, when nothing changed.",
        "Feed the mask to **Set Latent Noise Mask** on the first sampler's LATENT, sample again with the same seed "
        "and the edited layout's model, then **Latent Composite Masked** / **Image Composite Masked** with the same "
        "mask: outside it the result is the first image, pixel for pixel. The shipped workflows "
        "*Edit one instance, keep the rest* and *Iterative generation* are wired this way."),
    "InstanceDiffusionLayoutPreview": (
        "Every instance is drawn in its colour (box, point, scribble, polygon, mask) with its number and caption; "
        "a per-frame layout gives one picture per frame.",
        "Connect the decoded image to check that each instance landed where it was drawn."),
}


def cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def kind(spec) -> str:
    return "choice" if isinstance(spec[0], (list, tuple)) else str(spec[0])


def default(spec) -> str:
    """The default and range as a person reads them ('0.8 (0 to 1)'); empty for long texts and unset ones."""
    opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    value = opts.get("default")
    shown = "" if value is None or (isinstance(value, str) and (len(value) > 24 or "\n" in value)) else f"`{value}`"
    if "min" in opts and "max" in opts and opts["max"] < 2 ** 31:
        shown += f" ({opts['min']} to {opts['max']})"
    return shown.strip()


def page(key: str, cls, display: str) -> str:
    about, tip = PAGES[key]
    spec = cls.INPUT_TYPES()
    lines = [f"# {display}", "", cls.DESCRIPTION, "", about, "", "## Inputs", "",
             "| Input | Type | Default | What it does |", "| --- | --- | --- | --- |"]
    for section in ("required", "optional"):
        for name, s in spec.get(section, {}).items():
            opts = s[1] if len(s) > 1 and isinstance(s[1], dict) else {}
            what = opts.get("tooltip", "") + (" (optional)" if section == "optional" else "")
            lines.append(f"| `{name}` | {cell(kind(s))} | {cell(default(s))} | {cell(what)} |")
    names = getattr(cls, "RETURN_NAMES", None) or [t.lower() for t in cls.RETURN_TYPES]
    lines += ["", "## Outputs", "", "| Output | Type | What it is |", "| --- | --- | --- |"]
    for name, type_, tip_text in zip(names, cls.RETURN_TYPES, cls.OUTPUT_TOOLTIPS):
        lines.append(f"| `{name}` | {cell(type_)} | {cell(tip_text)} |")
    lines += ["", "## Tip", "", tip, ""]
    return "\n".join(lines)


def pages() -> dict:
    """{file name: text} for every product node."""
    pack = import_pack()
    return {f"{key}.md": page(key, cls, pack.NODE_DISPLAY_NAME_MAPPINGS.get(key, key))
            for key, cls in pack.NODE_CLASS_MAPPINGS.items()}


def main():
    DOCS.mkdir(parents=True, exist_ok=True)
    for name, text in pages().items():
        (DOCS / name).write_text(text)
        print("wrote", DOCS / name)


if __name__ == "__main__":
    main()
