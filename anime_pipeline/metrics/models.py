"""Where model weights live, which devices the metrics run on, and what each weight file needs.

Nothing here downloads anything: weights are pre-placed (the README's "Model weights" section
says how to fetch them on a machine with internet) and every loader reads them from these paths
or reports the metric unavailable, in which case the caller uses the weight-free fallback named
in `registry.model_rows`.

Folder layout under the models root (`ANIME_PIPELINE_MODELS`, default `./models`):

    insightface/models/<pack>/*.onnx          InsightFace pack, e.g. buffalo_l (det_10g.onnx, w600k_r50.onnx, …)
    ccip_onnx/<model>/                        deepghs CCIP, e.g. ccip-caformer-24-randaug-pruned (model_feat.onnx,
                                              model_metrics.onnx, metrics.json): the hub repository deepghs/ccip_onnx
    anime_face_detection/<name>/model.onnx    deepghs YOLOv8 anime face detector, e.g. face_detect_v1.4_s
    anime_head_detection/<name>/model.onnx    or a head detector (names head_detect_*), from deepghs/anime_head_detection
    torch/                                    torch home (`TORCH_HOME` overrides it)
      hub/checkpoints/alexnet-owt-7be5be79.pth        AlexNet backbone for LPIPS
      hub/checkpoints/dino_vitbase16_pretrain.pth     DINO ViT-B/16 weights
      hub/facebookresearch_dino_main/                 DINO's torch.hub repository (hubconf.py, vision_transformer.py, …)
    amt/amt-s.pth                             AMT-S frame interpolation (architecture from the `vbench` package)
    clip/ViT-L-14.pt                          OpenAI CLIP ViT-L/14 (loaded with open_clip)
    aesthetic/sa_0_4_vit_l_14_linear.pth      LAION aesthetic predictor v1 linear head
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

MODELS_ENV = "ANIME_PIPELINE_MODELS"
DEVICE_ENV = "ANIME_PIPELINE_METRICS_DEVICE"
FACE_PACK_ENV = "ANIME_PIPELINE_FACE_PACK"
DEFAULT_FACE_PACK = "buffalo_l"
CCIP_MODEL_ENV = "ANIME_PIPELINE_CCIP_MODEL"
DEFAULT_CCIP_MODEL = "ccip-caformer-24-randaug-pruned"  # imgutils' default
ANIME_DETECTOR_ENV = "ANIME_PIPELINE_ANIME_DETECTOR"
DEFAULT_ANIME_DETECTOR = "face_detect_v1.4_s"  # imgutils' detect_faces default (version v1.4, level s)
CCIP_FILES = ("model_feat.onnx", "model_metrics.onnx", "metrics.json")
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
DINO_FILE = "dino_vitbase16_pretrain.pth"
DINO_REPO = "facebookresearch_dino_main"
AMT_FILE = "amt-s.pth"
CLIP_FILE = "ViT-L-14.pt"
AESTHETIC_FILE = "sa_0_4_vit_l_14_linear.pth"


class ModelUnavailable(RuntimeError):
    """A model-based metric cannot run here: weights or a package are missing (the message says which)."""


class ModelOutputError(RuntimeError):
    """A loaded model answered with an output of the wrong shape or with non-finite values."""


@dataclass(frozen=True)
class ModelStore:
    """The configured weight folders and the metrics device ("cpu", "cuda", "cuda:N" or a bare GPU id)."""

    root: Path
    torch_home: Path
    device: str = "cpu"
    face_pack: str = DEFAULT_FACE_PACK
    ccip_model: str = DEFAULT_CCIP_MODEL
    anime_detector: str = DEFAULT_ANIME_DETECTOR

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ModelStore:
        root = Path(environ.get(MODELS_ENV, "").strip() or "models").absolute()
        torch_home = environ.get("TORCH_HOME", "").strip()
        return cls(root=root, torch_home=Path(torch_home).absolute() if torch_home else root / "torch",
                   device=environ.get(DEVICE_ENV, "").strip() or "cpu",
                   face_pack=environ.get(FACE_PACK_ENV, "").strip() or DEFAULT_FACE_PACK,
                   ccip_model=environ.get(CCIP_MODEL_ENV, "").strip() or DEFAULT_CCIP_MODEL,
                   anime_detector=environ.get(ANIME_DETECTOR_ENV, "").strip() or DEFAULT_ANIME_DETECTOR)

    @property
    def insightface_root(self) -> Path:
        return self.root / "insightface"

    @property
    def face_pack_dir(self) -> Path:
        return self.insightface_root / "models" / self.face_pack

    @property
    def ccip_dir(self) -> Path:
        return self.root / "ccip_onnx" / self.ccip_model

    @property
    def anime_detector_file(self) -> Path:
        repository = "anime_head_detection" if self.anime_detector.startswith("head") else "anime_face_detection"
        return self.root / repository / self.anime_detector / "model.onnx"

    @property
    def checkpoints(self) -> Path:
        return self.torch_home / "hub" / "checkpoints"

    @property
    def alexnet(self) -> Path:
        return self.checkpoints / ALEXNET_FILE

    @property
    def dino_weights(self) -> Path:
        return self.checkpoints / DINO_FILE

    @property
    def dino_repo(self) -> Path:
        return self.torch_home / "hub" / DINO_REPO

    @property
    def amt_weights(self) -> Path:
        return self.root / "amt" / AMT_FILE

    @property
    def clip_weights(self) -> Path:
        return self.root / "clip" / CLIP_FILE

    @property
    def aesthetic_head(self) -> Path:
        return self.root / "aesthetic" / AESTHETIC_FILE


# --- devices -----------------------------------------------------------------------------

def cuda_index(device: str) -> int | None:
    """The CUDA device index a device string names ("cuda" → 0, "cuda:1" → 1, "1" → 1), None for CPU."""
    name = device.strip().lower()
    if name.isdigit():
        return int(name)
    if name == "cuda":
        return 0
    if name.startswith("cuda:") and name[5:].isdigit():
        return int(name[5:])
    return None


def torch_device(device: str) -> str:
    """The torch device to run on: "cuda:N" when configured and torch sees a GPU, else "cpu"."""
    index = cuda_index(device)
    if index is None:
        return "cpu"
    import torch

    return f"cuda:{index}" if torch.cuda.is_available() and index < torch.cuda.device_count() else "cpu"


def onnx_providers(device: str) -> list[str]:
    """onnxruntime providers, always passed explicitly: CUDA then CPU when a CUDA device is
    configured and this onnxruntime build offers CUDA, else CPU only."""
    import onnxruntime

    if cuda_index(device) is not None and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def onnx_provider_options(providers: list[str], device: str) -> list[dict[str, str]]:
    """Per-provider options matching `providers`: the CUDA provider gets the configured device id."""
    return [{"device_id": str(cuda_index(device) or 0)} if p == "CUDAExecutionProvider" else {} for p in providers]


# --- weight files ------------------------------------------------------------------------

def missing_requirements(path: Path, packages: tuple[str, ...] = ()) -> str:
    """What keeps a weight file from being usable: the file itself, packages that are not
    importable ("" when nothing is missing)."""
    reasons = [f"{path} not found"] if not path.exists() else []
    reasons += [f"package {name} not installed" for name in packages if importlib.util.find_spec(name) is None]
    return "; ".join(reasons)


def identity_backend(pack: str) -> str:
    return f"InsightFace ArcFace ({pack}, onnxruntime)"


def ccip_backend(model: str, detector: str) -> str:
    return f"CCIP ({model}) with anime detector ({detector}), onnxruntime"


def identity_policy(drawn: str | None, photoreal: str | None) -> str:
    """Which identity backend judges which frames (`suite.MetricSuite.identity_backend`): CCIP on
    rendered frames of drawn styles, ArcFace on rendered photoreal ones, each where installed, and
    the weight-free head palette signature everywhere else, previz drawings always."""
    from anime_pipeline.metrics import weightfree

    fallback = weightfree.CHARACTER_BACKEND
    if drawn is None and photoreal is None:
        return fallback
    return (f"{drawn or fallback} on rendered drawn styles; {photoreal or fallback} on rendered photoreal styles; "
            f"{fallback} on previz drawings")
