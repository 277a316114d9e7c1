"""Generator settings: split sizes per preset and the difficulty knobs (all flags of `mmrt data make`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# Split sizes. small's pretraining pool is large enough that its preset's pretraining (10
# epochs) does not memorise it (docs/results/foundation.md). MASD's distillation pools (D_SD), both
# unlabeled and modality-complete: distill is a sample of pretrain the size of train (the same
# examples; the paper's 20K sample of AudioSet for its 20K labels); unseen is generated on its own,
# clips pretraining never saw, 4x train (tiny keeps its test-sized 1x).
SIZES: dict[str, dict[str, int]] = {
    "tiny": {"pretrain": 120, "train": 40, "eval": 60, "distill": 40, "unseen": 40},
    "small": {"pretrain": 38400, "train": 240, "eval": 480, "distill": 240, "unseen": 960},
    "base": {"pretrain": 20000, "train": 2000, "eval": 2000, "distill": 2000, "unseen": 8000},
}


# The knob defaults below were set from each modality fine-tuned alone, scored on validation
# (DESIGN.md section 2); every round is recorded in calibration.json, which the data card prints.
@dataclass(frozen=True)
class AudioKnobs:
    clip_seconds: float = 2.0  # every wav is exactly this long, 16 kHz mono
    snr_db: tuple[float, float] = (3.0, 18.0)  # digit speech vs stationary noise, uniform in range
    babble_words: tuple[int, int] = (0, 2)  # non-digit words from other voices mixed in
    babble_db: tuple[float, float] = (-9.0, 0.0)  # each babble word's level vs the digit speech
    miss: float = 0.12  # chance that a labelled digit is never spoken in the clip


@dataclass(frozen=True)
class VideoKnobs:
    frames: int = 16  # at 8 fps: a 2 s clip
    fps: int = 8
    size: int = 64  # frame height = width
    digit_px: tuple[int, int] = (14, 26)  # side of the rendered handwritten digit
    noise_std: tuple[float, float] = (10.0, 40.0)  # Gaussian pixel noise, std on 0-255
    distractors: tuple[int, int] = (0, 2)  # moving letters drawn over the clip
    miss: float = 0.15  # chance that a labelled digit is never on screen


@dataclass(frozen=True)
class TextKnobs:
    # Shares of title kinds; the rest carry no cue at all.
    named: float = 0.30  # names the label outright ("my son counting to seven")
    cue: float = 0.45  # partial cue: parity, range, arithmetic ("one more than six")
    foreign: float = 0.10  # names it in German, Spanish or French


@dataclass(frozen=True)
class GeneratorConfig:
    size: str = "small"
    seed: int = 0
    labels: str = "multi"  # "multi": one or two digits an example; "single": exactly one
    two_label_share: float = 0.4  # with labels="multi", share of examples holding two digits
    modalities: tuple[str, ...] = ("audio", "video", "text")
    eval_digit_share: float = 0.25  # handwritten digit images held out for the eval split
    pretrain_size: int | None = None  # clips in the unlabeled pretraining pool (None: the size's default)
    train_size: int | None = None  # labelled training examples (None: the size's default)
    unseen_size: int | None = None  # clips in the unseen distillation pool (None: the size's default)
    audio: AudioKnobs = field(default_factory=AudioKnobs)
    video: VideoKnobs = field(default_factory=VideoKnobs)
    text: TextKnobs = field(default_factory=TextKnobs)

    @property
    def split_sizes(self) -> dict[str, int]:
        sizes = dict(SIZES[self.size])
        if self.pretrain_size is not None:
            sizes["pretrain"] = self.pretrain_size
        if self.train_size is not None:
            sizes["train"] = self.train_size
        if self.unseen_size is not None:
            sizes["unseen"] = self.unseen_size
        return sizes

    def to_dict(self) -> dict:
        return asdict(self)
