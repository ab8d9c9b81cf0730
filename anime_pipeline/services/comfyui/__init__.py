"""A ComfyUI client: validate an API-format workflow, run it, and download what it made.

Built from the recorded protocol of ComfyUI 0.3.64 and 0.8.0 (reference/protocols.md §1 and the
recordings copied to tests/data/comfyui).

    with ComfyUIClient("http://127.0.0.1:8188", log=print) as client:
        result = client.run(workflow, Path("renders/shot_010"), timeout=600)
        result.outputs  # files on disk, in history order

How a run behaves:

* The workflow is checked against /object_info before anything is queued (graph.py).
* The prompt_id is ours (uuid4) and goes in the POST, so a POST whose answer was lost is never
  blindly repeated: the client first looks for the id in /queue and /history. ComfyUI itself
  does not reject a duplicate id; it would run the work twice.
* Progress comes from /ws?clientId=...; reconnects, polling and the one resubmission after a
  server restart are watch.py's.
* Output files are downloaded from /view, streamed to a temporary name in the target folder and
  renamed into place. Files of type "temp" (PreviewImage) are not downloaded.
* Every call has a total deadline and a size cap (services/http.py); every malformed answer is a
  ComfyUIError subclass, the one root of what this package raises.

Modules: errors (the ComfyUIError family), wire (typed answers and results), graph (validation
against /object_info, no I/O), watch (the WebSocket and the run watcher), client (ComfyUIClient).
"""

from anime_pipeline.services.comfyui.client import ComfyUIClient, ResponseLimits
from anime_pipeline.services.comfyui.errors import (ComfyUIBadResponse, ComfyUIError, ComfyUIRequestTimeout,
                                                    ComfyUIResponseTooLarge, ComfyUITimeout, ComfyUIUnavailable,
                                                    ExecutionFailed, Interrupted, PromptLost, PromptRejected,
                                                    UnsafeOutputPath, WorkflowValidationError)
from anime_pipeline.services.comfyui.graph import ValidationProblem, check_workflow
from anime_pipeline.services.comfyui.wire import (Device, HistoryEntry, OutputFile, ProgressEvent, QueueState,
                                                  RunResult, SystemStats, Timings, UploadedImage)

__all__ = [
    "ComfyUIBadResponse", "ComfyUIClient", "ComfyUIError", "ComfyUIRequestTimeout", "ComfyUIResponseTooLarge",
    "ComfyUITimeout", "ComfyUIUnavailable", "Device", "ExecutionFailed", "HistoryEntry", "Interrupted",
    "OutputFile", "ProgressEvent", "PromptLost", "PromptRejected", "QueueState", "ResponseLimits", "RunResult",
    "SystemStats", "Timings", "UnsafeOutputPath", "UploadedImage", "ValidationProblem", "WorkflowValidationError",
    "check_workflow",
]
