"""The UI -> API converter on 2026 node shapes: the box canvas widget (BOUNDING_BOXES) and socket-only box inputs."""
from scripts.headless import ui_to_api

OBJECT_INFO = {
    "CreateBoundingBoxes": {"input": {"required": {
        "width": ["INT", {"default": 1024}], "editor_state": ["BOUNDING_BOXES", {}]}}},
    "InstanceDiffusionLayoutFromDetections": {"input": {"required": {"width": ["INT", {}]}, "optional": {
        "boxes_with_metadata": ["BOUNDING_BOXES", {"forceInput": True}], "caption": ["STRING", {}]}}},
}


def test_canvas_state_is_a_wrapped_widget_value_and_forced_inputs_are_sockets():
    canvas = [{"x": 1, "y": 2, "width": 30, "height": 40, "metadata": {"desc": "a car"}}]
    workflow = {"nodes": [
        {"id": 3, "type": "CreateBoundingBoxes", "widgets_values": [512, canvas], "inputs": []},
        {"id": 4, "type": "InstanceDiffusionLayoutFromDetections", "widgets_values": [512, "a street"],
         "inputs": [{"name": "boxes_with_metadata", "link": 9}]}],
        "links": [[9, 3, 0, 4, 1, "BOUNDING_BOXES"]]}
    prompt = ui_to_api(workflow, OBJECT_INFO)
    assert prompt["3"]["inputs"] == {"width": 512, "editor_state": {"__value__": canvas}}
    assert prompt["4"]["inputs"] == {"width": 512, "boxes_with_metadata": ["3", 0], "caption": "a street"}
