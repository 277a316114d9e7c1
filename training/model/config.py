"""Architecture presets (data files in ``presets/``) and the model config saved beside the weights."""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from importlib import resources

import mmrt
from mmrt.errors import UserError
from mmrt.preprocess import Preprocessing
from mmrt.scores import metric_name

POOLS = ("cls", "mean", "max")


@dataclass(frozen=True)
class ArchConfig:
    width: int  # transformer hidden size, the same for every modality
    depth: int  # transformer blocks per modality encoder
    heads: int  # attention heads per block
    mlp_ratio: int  # MLP hidden size = mlp_ratio * width
    embed_dim: int  # d: the shared space in which modality embeddings are averaged
    audio_patch: int  # square log-mel patch: audio_patch mel bins x audio_patch frames
    n_mels: int  # mel bins of the audio front-end
    video_tubelet: tuple[int, int, int]  # frames x height x width of one video token
    tokenizer_vocab: int  # upper bound on the sentencepiece vocabulary trained at pretraining
    # "cls": the [CLS] token; "mean" / "max": the mean / channel-wise max of the non-padding tokens
    # (max finds a small object - a digit in a corner of the frame - that CLS and mean dilute)
    pool: str = "cls"
    stem_channels: int = 0  # >0: two stride-2 3x3 convolutions before the patch projection
    # (an "early convolutions" stem, Xiao et al. 2021; helps ViTs learn from little data)
    stem_norm: bool = False  # normalise each stem conv's output per example (GroupNorm, 1 group)
    positions: str = "learned"  # or "sinusoidal": fixed sin-cos per grid axis (MAE)
    shared_depth: int = 0  # the last blocks, shared by every modality's encoder (AV-MAE / CAV-MAE)
    preprocessing: Preprocessing = field(default_factory=Preprocessing)

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> ArchConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
        missing = required - set(d)
        if unknown or missing:
            raise UserError(f"{source}: architecture fields do not match this mmrt "
                            f"(unknown {sorted(unknown)}, missing {sorted(missing)})")
        d = dict(d, video_tubelet=tuple(d["video_tubelet"]),
                 preprocessing=Preprocessing(**d.get("preprocessing", {})))
        arch = cls(**d)
        if arch.pool not in POOLS:
            raise UserError(f"{source}: pool {arch.pool!r}: expected one of {list(POOLS)}")
        if arch.positions not in ("learned", "sinusoidal"):
            raise UserError(f"{source}: positions {arch.positions!r}: expected 'learned' or 'sinusoidal'")
        if not 0 <= arch.shared_depth <= arch.depth:
            raise UserError(f"{source}: shared_depth {arch.shared_depth} is not between 0 and "
                            f"depth {arch.depth}")
        if arch.width % arch.heads:
            raise UserError(f"{source}: width {arch.width} is not a multiple of heads {arch.heads}")
        p = arch.preprocessing
        if p.frames % arch.video_tubelet[0] or p.frame_size % arch.video_tubelet[1] \
                or p.frame_size % arch.video_tubelet[2]:
            raise UserError(f"{source}: video tubelet {arch.video_tubelet} does not tile "
                            f"{p.frames} frames of {p.frame_size} px")
        if arch.n_mels % arch.audio_patch:
            raise UserError(f"{source}: n_mels {arch.n_mels} is not a multiple of the audio patch")
        if arch.stem_channels and (arch.audio_patch % 4 or arch.video_tubelet[1] % 4
                                   or arch.video_tubelet[2] % 4):
            raise UserError(f"{source}: a convolutional stem needs patch sides divisible by 4")
        if arch.stem_norm and not arch.stem_channels:
            raise UserError(f"{source}: stem_norm needs a convolutional stem (stem_channels > 0)")
        return arch

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Schedule:
    """How one stage optimises: AdamW with linear warm-up then cosine decay, per step."""

    lr: float  # peak learning rate, reached at the end of warm-up
    batch_size: int  # global batch size (summed over processes)
    epochs: int = 0
    steps: int = 0  # > 0: this many optimizer steps, whatever ``epochs`` says (a step budget)
    warmup_steps: int = 0  # capped at a tenth of the run, so short runs still decay
    weight_decay: float = 0.05
    grad_clip: float = 1.0  # max gradient norm; 0 turns clipping off

    def __post_init__(self) -> None:
        if (self.epochs <= 0) == (self.steps <= 0):
            raise UserError(f"schedule {self}: expected either epochs or steps, positive")

    def override(self, epochs: int | None = None, lr: float | None = None,
                 batch_size: int | None = None, steps: int | None = None) -> Schedule:
        """This schedule with the command-line overrides that were given (``epochs`` replaces a
        step budget, ``steps`` replaces the epochs)."""
        given = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "steps": steps}
        changes = {k: v for k, v in given.items() if v is not None}
        for k, v in changes.items():
            if v <= 0:
                raise UserError(f"--{k.replace('_', '-')} {v}: expected a positive number")
        if epochs is not None and steps is not None:
            raise UserError("--epochs and --steps: give one of them")
        if epochs is not None:
            changes["steps"] = 0
        elif steps is not None:
            changes["epochs"] = 0
        return replace(self, **changes)

    def total_steps(self, steps_per_epoch: int) -> int:
        return self.steps or self.epochs * steps_per_epoch

    def lr_at(self, step: int, total: int) -> float:
        warmup = min(self.warmup_steps, max(1, total // 10))
        if step < warmup:
            return self.lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return self.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


STAGES = ("pretrain", "pretrain_mae", "probe", "finetune")


@dataclass(frozen=True)
class MaeConfig:
    """Masked-autoencoder pretraining (paper 4.1, AV-MAE / CAV-MAE style): what it changes in the
    encoders and how it masks and reconstructs."""

    shared_depth: int  # the encoders' last blocks, one set shared by every modality
    mask_ratio: dict[str, float]  # share of each modality's tokens hidden from the encoder
    decoder_width: int  # per-modality reconstruction decoders, dropped after pretraining
    decoder_depth: int
    repeats: int = 2  # each batch is used this many times, with a new mask each time
    # modalities reconstructed as the encoder sees their patches, not normalised per patch (MAE's
    # normalised pixels make a patch of pure noise as loud as one with content)
    raw_targets: tuple[str, ...] = ()
    # how an MAE-pretrained encoder pools its tokens, where it differs from the architecture's
    # (MAE's loss never pools; AV-MAE and Audio-MAE average the tokens)
    pool: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "raw_targets", tuple(self.raw_targets))  # a list, from JSON
        if self.pool is not None and self.pool not in POOLS:
            raise UserError(f"the preset's mae pool {self.pool!r}: expected one of {list(POOLS)}")
        if set(self.raw_targets) - {"audio", "video"}:
            raise UserError(f"the preset's mae raw_targets {list(self.raw_targets)}: expected audio or "
                            "video (patched modalities)")

    def encoder_arch(self, arch: ArchConfig) -> ArchConfig:
        """The encoders MAE pretraining builds from ``arch``: fixed sin-cos positions, the last
        blocks shared by every modality, and this section's pooling where it sets one."""
        return replace(arch, positions="sinusoidal", shared_depth=self.shared_depth,
                       pool=self.pool or arch.pool)

    def ratio(self, modality: str) -> float:
        if modality not in self.mask_ratio:
            raise UserError(f"the preset's mae section has no mask ratio for {modality!r}")
        return self.mask_ratio[modality]


REDUCTIONS = ("sum", "mean")
DISTILL_SOURCES = ("pretrain", "unseen", "carve")
DISTILL_LOSSES = ("soft", "logits")


@dataclass(frozen=True)
class Downstream:
    """How the downstream stages (ft, masd, masd-cw, moddrop) augment, drop and distil, each field
    a command-line flag. The defaults are the recipe chosen on validation (docs/decisions.md), which
    every preset gets; a preset's ``downstream`` section may change a field, saying why in a
    ``why`` entry beside it."""

    # Augmentation (paper section 5), applied alike to every tuned stage's labelled batches:
    mixup: float = 0.0  # share of a batch's examples mixed with another (audio, video, labels; not text)
    drop_path: float = 0.0  # stochastic depth of the last block, rising linearly from 0 at the first
    augment: bool = False  # pretraining's augmentations: SpecAugment-style masks and a time shift
    # for audio, spatial shifts and brightness/contrast for video (never flips: a mirrored digit
    # is another symbol), word-piece drop for text; also on MASD's unlabelled batches
    drop: float = 0.5  # moddrop: probability that an example loses each modality
    distill_weight: float = 1.0  # MASD: weight of the self-distillation loss
    # chosen on validation (docs/results/training-recipe.md; on the current foundation 4 to the
    # logit-matching limit agree, docs/results/foundation.md)
    distill_temperature: float = 16.0
    # "soft": the teacher's probabilities at the temperature (Hinton et al.; the loss scaled by
    # T^2); "logits": the teacher's logits (the limit of "soft" as T grows: mean squared logit
    # difference, / 8 per class for a multi-label head, centred and / 2C for a softmax head)
    distill_loss: str = "soft"
    # Eq. 8 over the classes of a multi-label head: "sum" as written, or "mean" (1/C of it).
    # A softmax head's cross-entropy is the sum either way.
    distill_reduction: str = "mean"
    # D_SD: "pretrain" = distill.jsonl, a sample of the pretraining clips (the paper's AudioSet
    # runs); "unseen" = unseen.jsonl, clips pretraining never saw; "carve" = a seeded 20% carved
    # out of the labelled train split, labels unused, every stage then training on the other 80%
    # (its distill-on-Kinetics runs)
    distill_source: str = "pretrain"
    distill_examples: int = 0  # use this many clips of the pool (a seeded sample); 0: all of it

    def __post_init__(self) -> None:
        checks = [("mixup", self.mixup, 0.0 <= self.mixup <= 1.0, "a share from 0 to 1"),
                  ("drop-path", self.drop_path, 0.0 <= self.drop_path < 1.0, "a rate from 0 to below 1"),
                  ("drop-prob", self.drop, 0.0 <= self.drop < 1.0, "a probability below 1"),
                  ("distill-weight", self.distill_weight, self.distill_weight >= 0.0, "0 or more"),
                  ("distill-temperature", self.distill_temperature, self.distill_temperature > 0.0,
                   "a positive number"),
                  ("distill-loss", self.distill_loss, self.distill_loss in DISTILL_LOSSES,
                   f"one of {list(DISTILL_LOSSES)}"),
                  ("distill-reduction", self.distill_reduction, self.distill_reduction in REDUCTIONS,
                   f"one of {list(REDUCTIONS)}"),
                  ("distill-source", self.distill_source, self.distill_source in DISTILL_SOURCES,
                   f"one of {list(DISTILL_SOURCES)}"),
                  ("distill-examples", self.distill_examples, self.distill_examples >= 0,
                   "0 (the whole pool) or a count")]
        for flag, value, ok, expected in checks:
            if not ok:
                raise UserError(f"--{flag} {value}: expected {expected}")

    def override(self, **given) -> Downstream:
        """This configuration with the flags that were given (None: not given)."""
        return replace(self, **{k: v for k, v in given.items() if v is not None})

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    arch: ArchConfig
    recipe: dict[str, Schedule]  # stage -> default schedule; command-line flags override it
    mae: MaeConfig
    downstream: Downstream = field(default_factory=Downstream)

    def downstream_settings(self, epochs: int | None = None, lr: float | None = None,
                            batch_size: int | None = None, steps: int | None = None,
                            overrides: dict | None = None) -> tuple[Schedule, Downstream]:
        """A downstream run's fine-tuning schedule and settings: this preset's, with the command
        line's overrides (None: not given). The one place `mmrt train`, `experiment` and `tune`
        resolve them."""
        schedule = self.recipe["finetune"].override(epochs, lr, batch_size, steps)
        return schedule, self.downstream.override(**(overrides or {}))


PRESETS = ("tiny", "small", "base")


def load_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise UserError(f"--preset {name!r}: expected one of {list(PRESETS)}")
    text = resources.files("mmrt.training").joinpath("presets", f"{name}.json").read_text("utf-8")
    doc = json.loads(text)
    recipe = {stage: Schedule(**doc["recipe"][stage]) for stage in STAGES}
    mae = MaeConfig(**doc["mae"])
    for modality, r in mae.mask_ratio.items():
        if not 0.0 < r < 1.0:
            raise UserError(f"preset {name}: mae mask ratio {r} for {modality}: expected 0 < r < 1")
    arch = ArchConfig.from_dict(doc["arch"], f"preset {name}")
    if mae.shared_depth > arch.depth:
        raise UserError(f"preset {name}: mae shared_depth {mae.shared_depth} exceeds depth {arch.depth}")
    downstream = preset_downstream(name, doc.get("downstream", {}))
    return Preset(name, doc["description"], arch, recipe, mae, downstream)


def preset_downstream(name: str, section: dict) -> Downstream:
    """A preset's downstream settings: the chosen recipe (``Downstream()``), changed only where its
    ``downstream`` section says so, with a ``why``."""
    changes = {k: v for k, v in section.items() if k != "why"}
    if changes and not str(section.get("why", "")).strip():
        raise UserError(f"preset {name}: its downstream section changes the chosen recipe "
                        f"({', '.join(changes)}) without saying why (a 'why' entry)")
    try:
        return Downstream(**changes)
    except TypeError as e:
        raise UserError(f"preset {name}: downstream section: {e}") from None


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model from ``model.safetensors`` (written as config.json)."""

    preset: str  # the architecture preset's name, for people reading the file
    arch: ArchConfig
    modalities: tuple[str, ...]  # encoder order; from the data, never assumed
    text_vocab: int = 0  # the trained tokenizer's real vocabulary size (0 without text)
    classes: tuple[str, ...] = ()  # empty for a pretrained-only model (no head yet)
    task: str = "multi-label"  # or "single-label": decides the loss, the metric and the head output
    history: tuple[dict, ...] = ()  # stages that produced these weights, oldest first
    mmrt_version: str = mmrt.__version__

    def to_dict(self) -> dict:
        d = asdict(self)
        d["arch"] = self.arch.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict, source: str = "config.json") -> ModelConfig:
        try:
            return cls(preset=d["preset"], arch=ArchConfig.from_dict(d["arch"], source),
                       modalities=tuple(d["modalities"]), text_vocab=int(d.get("text_vocab", 0)),
                       classes=tuple(d.get("classes", ())), task=d.get("task", "multi-label"),
                       history=tuple(d.get("history", ())),
                       mmrt_version=d.get("mmrt_version", "unknown"))
        except (KeyError, TypeError) as e:
            raise UserError(f"{source}: not an mmrt model config (missing or bad {e})") from None

    @property
    def metric(self) -> str:
        return metric_name(self.task)
