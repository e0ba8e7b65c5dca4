"""Rewrites the README's pictures in docs/ from a test host (run on purpose; the test suite never writes docs/)."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from scripts.headless import HostServer  # noqa: E402

BROWSER = REPO / "tests" / "browser"
OUT = REPO / "out" / "docs_pictures"
WORKFLOW = REPO / "workflows" / "All formats in one layout - InstanceDiffusion.json"


def node(*args):
    subprocess.run(["node", *map(str, args)], cwd=BROWSER, check=True, timeout=600)


def main():
    subprocess.run([str(REPO / "scripts" / "setup_browser.sh")], check=True)
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_random_models.py")], check=True, stdout=subprocess.DEVNULL)
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    with HostServer(test_nodes=True) as host:
        node("editor_flow.mjs", host.url, OUT)
        error = json.loads((OUT / "result.json").read_text()).get("error")
        if error:
            sys.exit(f"the editor flow failed, docs/ left as it was:\n{error}")
        node("screenshot_workflow.mjs", host.url, WORKFLOW, OUT / "workflow.png")
    for name in ("editor.png", "editor-popout.png", "workflow.png"):
        shutil.copyfile(OUT / name, REPO / "docs" / name)
        print(f"wrote docs/{name}")


if __name__ == "__main__":
    main()
