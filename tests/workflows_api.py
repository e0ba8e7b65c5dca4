"""API prompts for the tests: the tiny random SD1.5 + random InstanceDiffusion running our nodes."""
import json

from scripts.headless import PromptBuilder

SIZE = 128


def layout_json(instances, width=SIZE, height=SIZE, caption="a test scene"):
    return json.dumps({"schema": "instdiff.layout", "version": 1, "width": width, "height": height,
                       "caption": caption, "instances": instances})


FORMATS = {
    "boxes": [{"caption": "a red cube", "box": [8, 8, 48, 40]}, {"caption": "a blue ball", "box": [64, 60, 56, 60]}],
    "points": [{"caption": "a cat", "point": [30, 40]}, {"caption": "a dog", "point": [100, 90]}],
    "scribbles": [{"caption": "a river", "scribble": [[[5, 100], [40, 90], [80, 100], [120, 95]]]},
                  {"caption": "a bird", "scribble": [[[60, 20], [70, 25], [80, 20]]]}],
    "polygons": [{"caption": "a house", "polygon": [[[20, 100], [60, 60], [100, 100]]]},
                 {"caption": "a sun", "polygon": [[[90, 10], [120, 10], [120, 40], [90, 40]]]}],
}


def tiny_models(b, seed=1, salt="tiny"):
    models = b.add("InstDiffTestRandomTinySD15", seed=seed, model_channels=32)
    instdiff = b.add("InstDiffTestRandomInstanceDiffusion", salt=salt, model_channels=32)
    return models, instdiff


def grounded_prompt(instances=None, *, layout_node=None, mask_instance=False, full=1.0, decay=0.0, scaleu=True,
                    masked=False, steps=2, seed=5, batch=1, width=SIZE, height=SIZE, sampler="euler", mis=None,
                    max_batch=0, save_latent=True, preview=True, preview_image=True, plain_too=False, extra_model_patch=None):
    """Tiny models -> layout -> tokenizer -> Apply -> sampler -> saved latent (+ image, layout preview)."""
    b = PromptBuilder()
    models, instdiff = tiny_models(b)
    layout = layout_node(b) if layout_node else b.add(
        "InstanceDiffusionLayout", width=width, height=height, caption="a test scene",
        layout_json=layout_json(instances or [], width, height))
    if mask_instance:
        empty = b.add("SolidMask", value=0.0, width=width, height=height)
        blob = b.add("SolidMask", value=1.0, width=width // 3, height=width // 4)
        mask = b.add("MaskComposite", destination=empty[0], source=blob[0], x=width // 2, y=height // 3, operation="add")
        layout = b.add("InstanceDiffusionAddMask", layout=layout[0], caption="a green blob", mask=mask[0], threshold=0.5)
    tok = b.add("InstanceDiffusionTokenizer", clip=models[1], layout=layout[0], instancediffusion=instdiff[0],
                config="auto", sample_seed=0)
    patched = b.add("ApplyInstanceDiffusion", model=models[0], instancediffusion=instdiff[0],
                    instance_conditioning=tok[0], grounding_full=full, grounding_decay=decay, scaleu=scaleu,
                    masked_attention=masked)
    model = patched
    if extra_model_patch:
        model = extra_model_patch(b, patched)
    pos = b.add("CLIPTextEncode", text="a test scene", clip=models[1])
    neg = b.add("CLIPTextEncode", text="blurry", clip=models[1])
    latent = b.add("EmptyLatentImage", width=width, height=height, batch_size=batch)
    common = dict(seed=seed, steps=steps, cfg=7.0, sampler_name=sampler, scheduler="normal", positive=pos[0],
                  negative=neg[0], latent_image=latent[0], denoise=1.0)
    if mis is None:
        sampled = b.add("KSampler", model=model[0], **common)
    else:
        sampled = b.add("InstanceDiffusionKSampler", model=model[0], mis=mis, max_batch=max_batch, **common)
    ids = {"sampled": sampled}
    if save_latent:
        ids["latent"] = b.add("SaveLatent", samples=sampled[0], filename_prefix="latents/grounded")
    image = b.add("VAEDecode", samples=sampled[0], vae=models[2])
    ids["image"] = b.add("SaveImage", images=image[0], filename_prefix="grounded")
    if preview:
        pic = b.add("InstanceDiffusionLayoutPreview", layout=layout[0], **({"image": image[0]} if preview_image else {}))
        ids["preview"] = b.add("SaveImage", images=pic[0], filename_prefix="layout")
    if plain_too:
        plain = b.add("KSampler", model=models[0], **common)
        ids["plain"] = b.add("SaveLatent", samples=plain[0], filename_prefix="latents/plain")
    return b.prompt, ids


TINY_LOADERS = {  # a shipped loader -> the tiny test node standing in for it (same outputs, slot for slot)
    "CheckpointLoaderSimple": ("InstDiffTestRandomTinySD15", {"model_channels": 32}),
    "LoadInstanceDiffusion": ("InstDiffTestRandomInstanceDiffusion", {"salt": "tiny", "model_channels": 32}),
}


def on_tiny_models(prompt: dict, lora: str, host_dtype: bool = False) -> dict:
    """The same graph on the tiny random UNet (base width 32, in the host's loader dtype if host_dtype; full-size
    CLIP-L, TAESD) and the formula InstanceDiffusion weights at its width, `lora` (a LoRA file for that UNet) in every
    LoRA loader. The stand-ins get fixed node ids (from 90001, in the order of their old ids; the k-th checkpoint
    seeded k): the host keeps a node's output while the next prompt has that node with the same id and inputs, so the
    stand-ins are built once for many workflows run in a row."""
    loaders = sorted((int(nid) for nid, n in prompt.items() if n["class_type"] in TINY_LOADERS))
    new = {str(old): str(90001 + i) for i, old in enumerate(loaders)}
    out = {}
    for nid, node in prompt.items():
        node = json.loads(json.dumps(node))
        for key, value in node["inputs"].items():
            if isinstance(value, list) and len(value) == 2 and value[0] in new:  # a link: [node id, output slot]
                node["inputs"][key] = [new[value[0]], value[1]]
        if node["class_type"] in TINY_LOADERS:
            kind, inputs = TINY_LOADERS[node["class_type"]]
            if kind == "InstDiffTestRandomTinySD15":
                inputs = dict(inputs, host_dtype=host_dtype, seed=1 + sum(
                    prompt[o]["class_type"] == node["class_type"] for o in new if int(o) < int(nid)))
            node = {"class_type": kind, "inputs": dict(inputs)}
        if "lora_name" in node["inputs"]:
            node["inputs"]["lora_name"] = lora
        out[new.get(nid, nid)] = node
    return out


def instancediffusion_off(prompt: dict) -> dict:
    """The same prompt with every Apply InstanceDiffusion inert (gate off, no ScaleU): equal to bypassing Apply for
    the stock KSampler (test_gate_off_and_scaleu_off_equals_the_plain_model), and the multi-instance sampler still
    finds its patch, so only InstanceDiffusion's own effect is removed."""
    prompt = json.loads(json.dumps(prompt))
    for node in prompt.values():
        if node["class_type"] == "ApplyInstanceDiffusion":
            node["inputs"].update(grounding_full=0.0, grounding_decay=0.0, scaleu=False)
    return prompt


def _mirror_x(value, width):
    """Coordinates nested as [x, y] pairs, mirrored left-right."""
    if isinstance(value[0], (int, float)):
        return [width - value[0], value[1]]
    return [_mirror_x(v, width) for v in value]


def _mirror_layout(layout: dict, box_key="box", instances_key="instances") -> dict:
    w = layout["width"]
    for inst in layout[instances_key]:
        if box_key in inst:
            x, y, bw, bh = inst[box_key]
            inst[box_key] = [w - x - bw, y, bw, bh]
        for key in ("point", "scribble", "polygon"):
            if inst.get(key):
                inst[key] = _mirror_x(inst[key], w)
    return layout


def mirrored(prompt: dict) -> dict:
    """The same prompt with every instance moved to its left-right mirror position (layout JSON, Add Instance
    nodes, imported and keyframed layouts, painted masks)."""
    prompt = json.loads(json.dumps(prompt))
    width = next((n["inputs"]["width"] for n in prompt.values() if n["class_type"] == "InstanceDiffusionLayout"), 512)
    for node in prompt.values():
        inputs, kind = node["inputs"], node["class_type"]
        if kind == "InstanceDiffusionLayout":
            inputs["layout_json"] = json.dumps(_mirror_layout(json.loads(inputs["layout_json"])))
        if kind == "InstanceDiffusionLayoutKeyframes":
            inputs["keyframes"] = json.dumps([dict(k, layout=_mirror_layout(k["layout"]))
                                              for k in json.loads(inputs["keyframes"])])
        if kind == "InstanceDiffusionImportLayout" and inputs["format"] == "official demo":
            inputs["text"] = json.dumps(_mirror_layout(json.loads(inputs["text"]), "bbox", "annos"))
        if kind == "InstanceDiffusionAddBox":
            inputs["x"] = width - inputs["x"] - inputs["width"]
        if kind == "InstanceDiffusionAddPoint":
            inputs["x"] = width - inputs["x"]
        if kind == "InstanceDiffusionAddShape":
            inputs["points"] = "\n".join(" ".join(f"{width - float(x):g},{y}" for x, y in (t.split(",") for t in line.split()))
                                         for line in inputs["points"].splitlines() if line.strip())
        if node["class_type"] == "MaskComposite":
            dest, source = (prompt[inputs[k][0]]["inputs"]["width"] for k in ("destination", "source"))
            inputs["x"] = dest - inputs["x"] - source
    return prompt


def save_latent_after(prompt: dict, sampler_types=("KSampler", "InstanceDiffusionKSampler")) -> str:
    """Add a SaveLatent on the sampler fed by Apply InstanceDiffusion (the last stage's in multi-stage workflows:
    edit, iterative generation); returns its node id."""
    applied = {nid for nid, n in prompt.items() if n["class_type"] == "ApplyInstanceDiffusion"}
    sampler = max((nid for nid, n in prompt.items()
                   if n["class_type"] in sampler_types and n["inputs"]["model"][0] in applied), key=int)
    nid = str(max(int(k) for k in prompt) + 1)
    prompt[nid] = {"class_type": "SaveLatent", "inputs": {"samples": [sampler, 0], "filename_prefix": "latents/wf"}}
    return nid
