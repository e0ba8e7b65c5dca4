"""Thin ComfyUI glue: collects the node classes of every node family."""
NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}


def _register(module):
    NODE_CLASS_MAPPINGS.update(module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(module.NODE_DISPLAY_NAME_MAPPINGS)


from . import apply, edit, interop, layout, loader, preview, sampler, tokenizer  # noqa: E402

for _family in (loader, layout, interop, tokenizer, apply, sampler, preview, edit):
    _register(_family)
