"""What the bench needs to know of the model: from a bundle's manifest, or asked of a running server."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mmrt.bundle import verify_bundle
from mmrt.errors import UserError
from mmrt.scores import metric_name


@dataclass(frozen=True)
class ModelInfo:
    name: str
    modalities: tuple[str, ...]
    classes: tuple[str, ...]
    task: str

    @property
    def metric(self) -> str:
        return metric_name(self.task)


def from_bundle(bundle: Path) -> ModelInfo:
    m = verify_bundle(bundle)
    return ModelInfo(m.name, m.modalities, m.classes, m.task)


def _config(url: str, name: str | None) -> tuple[dict, dict]:
    """A KServe v2 server's model configuration and its string parameters."""
    import tritonclient.grpc as tc

    try:
        client = tc.InferenceServerClient(url)
        config = client.get_model_config(name or "mmrt", as_json=True)["config"]
    except Exception as e:  # noqa: BLE001 - tritonclient raises its own exception types
        raise UserError(f"--url {url}: cannot read the model's configuration ({e})") from None
    return config, {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}


def served_precision(url: str, name: str) -> str:
    """What the server's encoders run in (mmrt servers say; "unknown" for others)."""
    return _config(url, name)[1].get("precision", "unknown")


def from_server(url: str, name: str | None = None) -> ModelInfo:
    """The first model a KServe v2 server lists in its config parameters (mmrt servers do)."""
    config, params = _config(url, name)
    if not {"modalities", "classes", "task"} <= set(params):
        raise UserError(f"--url {url}: model {config.get('name')!r} does not say its modalities, classes "
                        f"and task (is it an mmrt server?)")
    return ModelInfo(config["name"], tuple(params["modalities"].split("+")),
                     tuple(params["classes"].split(",")), params["task"])
