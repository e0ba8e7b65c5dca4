"""Layout importers: the official InstanceDiffusion demo JSON and COCO-style annotations."""

from .constants import MAX_INSTANCES
from .errors import InstDiffError
from .geometry import clamp, rasterize_polygon
from .layout import MAX_SIDE, Instance, Layout, location_cost
from .locations import locations_of
from .values import check_cost, decode_json, is_int, is_number, short


def _load(data, what: str) -> dict:
    data = decode_json(data, what)
    if not isinstance(data, dict):
        raise InstDiffError(f"{what} must be a JSON object, got {short(data)}")
    return data


def _fit_box(box, width, height, i: int, notes: list):
    """Clamp an [x, y, w, h] box to the image (official demos have boxes past the border); None if empty."""
    if not (isinstance(box, list) and len(box) == 4 and all(is_number(v) for v in box) and _is_dims(width, height)):
        return box  # left to Layout validation, which names the problem
    x0, y0 = clamp(box[0], width), clamp(box[1], height)
    x1, y1 = clamp(box[0] + box[2], width), clamp(box[1] + box[3], height)
    fitted = [x0, y0, x1 - x0, y1 - y0]
    if x1 <= x0 or y1 <= y0:
        notes.append(f"instance {i}: box {box} has no area inside the {width}x{height} image; box dropped")
        return None
    if fitted != list(box):
        notes.append(f"instance {i}: box {box} clamped to the image: {fitted}")
    return fitted


def from_official_demo(data, notes: list | None = None) -> Layout:
    """Official demo JSON (demos/*.json of the InstanceDiffusion repo) -> Layout.

    {"caption", "width", "height", "annos": [{"caption", "category_name", "bbox": [x, y, w, h],
    "mask": [] | COCO RLE | COCO polygons, "point": [x, y], "scribble": [[x, y], ...]}]}; an empty `mask`
    list means no mask; polygon lists there (COCO `segmentation` style, [[x0, y0, x1, y1, ...], ...]) become
    the instance's polygon rings and their rasterised mask; a missing caption falls back to category_name. Unlike the official inference.py (which discards
    the masks it reads), masks are kept. Boxes are clamped to the image; a box with no area inside it is
    dropped, and an instance left without any location is skipped. Each such change is appended to
    `notes` (if given) as a sentence.
    """
    notes = [] if notes is None else notes
    data = _load(data, "demo layout")
    annos = data.get("annos", [])
    if not isinstance(annos, list):
        raise InstDiffError('demo layout: "annos" must be a list of objects')
    _check_cost(annos, data.get("width"), data.get("height"), "demo layout")
    instances = []
    for i, anno in enumerate(annos):
        if not isinstance(anno, dict):
            raise InstDiffError(f"instance {i}: expected an object, got {short(anno)}")
        mask, polygon = anno.get("mask"), None
        if isinstance(mask, list):
            polygon = _rings(mask, data.get("width"), data.get("height"), i) if mask else None
            mask = _polygon_mask(polygon, data.get("width"), data.get("height"), i, notes) if mask else None
        inst = Instance(
            caption=anno.get("caption") or anno.get("category_name") or "",
            box=_fit_box(anno.get("bbox"), data.get("width"), data.get("height"), i, notes),
            point=anno.get("point"),
            scribble=anno.get("scribble"),
            polygon=polygon,
            mask=mask,
        )
        if not locations_of(inst):
            notes.append(f"instance {i} ({inst.caption!r}) skipped: no location left")
            continue
        instances.append(inst)
    return Layout(width=data.get("width"), height=data.get("height"), caption=data.get("caption", ""), instances=instances)


def from_coco(data, image_id=None, caption: str | None = None, notes: list | None = None) -> Layout:
    """COCO annotations ({"images", "annotations", "categories"}) of one image -> Layout.

    `image_id` may be omitted when the file holds one image. Instance caption = annotation "caption" if
    present, else the category name. Segmentation: polygon lists -> polygon rings, RLE (compressed string or
    uncompressed counts) -> mask. COCO boxes/vertices that stick out of the image by rounding are clamped
    to it (changes appended to `notes`, as for the demo importer). Global caption defaults to the category names joined by ", " (the official make_a_sentence).
    """
    notes = [] if notes is None else notes
    data = _load(data, "COCO annotations")
    images, annotations = data.get("images"), data.get("annotations")
    if not isinstance(images, list) or not isinstance(annotations, list):
        raise InstDiffError('COCO annotations need "images" and "annotations" lists')
    if image_id is None:
        if len(images) != 1:
            raise InstDiffError(f"COCO file has {len(images)} images; pass image_id (one of the images' ids)")
        image = images[0]
    else:
        found = [im for im in images if isinstance(im, dict) and im.get("id") == image_id]
        if not found:
            raise InstDiffError(f"COCO file has no image with id {image_id!r}")
        image = found[0]
    if not isinstance(image, dict):
        raise InstDiffError("COCO image entries must be objects with id, width, height")
    width, height = image.get("width"), image.get("height")
    categories = data.get("categories") or []
    if not isinstance(categories, list):
        raise InstDiffError('COCO "categories" must be a list of {"id", "name"} objects')
    names = {c.get("id"): c.get("name") for c in categories if isinstance(c, dict) and isinstance(c.get("id"), (int, str))}
    anns = [a for a in annotations if isinstance(a, dict) and a.get("image_id") == image.get("id")]
    if len(anns) > MAX_INSTANCES:
        raise InstDiffError(
            f"InstanceDiffusion supports at most {MAX_INSTANCES} instances; remove {len(anns) - MAX_INSTANCES} "
            f"(image {image.get('id')!r} has {len(anns)} annotations)"
        )
    _check_cost(anns, width, height, "COCO annotations")
    instances = []
    for i, ann in enumerate(anns):
        cid = ann.get("category_id")
        text = ann.get("caption") or (names.get(cid) if isinstance(cid, (int, str)) else None) or ""
        box = _fit_box(ann.get("bbox"), width, height, i, notes)
        seg = ann.get("segmentation")
        polygon = mask = None
        if isinstance(seg, dict):
            mask = seg
        elif isinstance(seg, list) and seg:
            polygon = _rings(seg, width, height, i)
        instances.append(Instance(caption=text, box=box, polygon=polygon, mask=mask))
    if caption is None:
        caption = ", ".join(inst.caption for inst in instances if isinstance(inst.caption, str) and inst.caption)
    return Layout(width=width, height=height, caption=caption, instances=instances)


def _rings(seg: list, width, height, i: int) -> list:
    """COCO polygons [[x0, y0, x1, y1, ...], ...] (a single flat ring accepted) -> [[[x, y], ...], ...],
    vertices clamped to the image (they stick out by rounding in COCO exports)."""
    if all(is_number(v) for v in seg):
        seg = [seg]
    rings = []
    for j, flat in enumerate(seg):
        if not isinstance(flat, list) or len(flat) % 2 or not all(is_number(v) for v in flat):
            raise InstDiffError(f"instance {i} polygon ring {j}: COCO polygons are flat [x0, y0, x1, y1, ...] lists")
        ring = [[flat[k], flat[k + 1]] for k in range(0, len(flat), 2)]
        if _is_dims(width, height):
            ring = [[clamp(x, width), clamp(y, height)] for x, y in ring]
        rings.append(ring)
    return rings


def _polygon_mask(rings: list, width, height, i: int, notes: list):
    """The rings' rasterised mask; None where the layout is invalid (Layout names the problem) or it is empty."""
    if not _is_dims(width, height) or max(width, height) > MAX_SIDE or any(len(r) < 3 for r in rings):
        return None
    mask = rasterize_polygon(rings, height, width)
    if not mask.any():
        notes.append(f"instance {i}: mask polygon covers no pixel centre; kept as a polygon only")
        return None
    return mask


def _is_dims(width, height) -> bool:
    return all(is_int(v) and v > 0 for v in (width, height))


def _check_cost(annotations: list, width, height, what: str) -> None:
    """Refuse annotations whose points or masks exceed the budget (limits.py) before any is rasterised."""
    points, masks = location_cost([a for a in annotations if isinstance(a, dict)])
    check_cost(points, masks * width * height if _is_dims(width, height) else 0, what)
