"""A fake ComfyUI in a process of its own, as a real server is, so a test can SIGKILL it and start another:

    python tests/deploy/serve_fake_comfyui.py PORT RENDER_SECONDS STATE_FILE

Prints "ready" once it answers; on SIGTERM writes what it queued ({"queued": {prompt id: times}}) to STATE_FILE.
"""

import json
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository: `tests` is a package

from tests.services.fake_comfyui import FakeComfyUI  # noqa: E402


def main() -> None:
    port, render, state = int(sys.argv[1]), float(sys.argv[2]), Path(sys.argv[3])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with FakeComfyUI(render_time=render, port=port) as fake:
        print("ready", flush=True)
        stop.wait()
        state.write_text(json.dumps({"queued": dict(fake.queued)}))


if __name__ == "__main__":
    main()
