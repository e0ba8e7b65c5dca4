"""Thin ComfyUI glue: collects the node classes of every node family."""
import os

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}


def _register(module):
    NODE_CLASS_MAPPINGS.update(module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(module.NODE_DISPLAY_NAME_MAPPINGS)


from . import apply, interop, layout, loader, preview, sampler, tokenizer  # noqa: E402

for _family in (loader, layout, interop, tokenizer, apply, sampler, preview):
    _register(_family)

if os.environ.get("INSTDIFF_TEST_NODES") == "1":
    from . import test_fixtures
    _register(test_fixtures)
