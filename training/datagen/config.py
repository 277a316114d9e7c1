"""Generator settings: split sizes per preset and the difficulty knobs (all flags of `mmrt data make`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# Split sizes: the unlabeled pool is about 10x the labeled train split (DESIGN.md section 2).
# distill is a sample of pretrain (same examples), the modality-complete set MASD distils on.
SIZES: dict[str, dict[str, int]] = {
    "tiny": {"pretrain": 120, "train": 40, "eval": 60, "distill": 40},
    "small": {"pretrain": 2400, "train": 240, "eval": 480, "distill": 480},
    "base": {"pretrain": 20000, "train": 2000, "eval": 2000, "distill": 2000},
}


@dataclass(frozen=True)
class AudioKnobs:
    clip_seconds: float = 2.0  # every wav is exactly this long, 16 kHz mono
    snr_db: tuple[float, float] = (-6.0, 9.0)  # digit speech vs stationary noise, uniform in range
    babble_words: tuple[int, int] = (0, 2)  # non-digit words from other voices mixed in
    babble_db: tuple[float, float] = (-9.0, 0.0)  # each babble word's level vs the digit speech
    miss: float = 0.12  # chance that a labelled digit is never spoken in the clip


@dataclass(frozen=True)
class VideoKnobs:
    frames: int = 16  # at 8 fps: a 2 s clip
    fps: int = 8
    size: int = 64  # frame height = width
    digit_px: tuple[int, int] = (14, 26)  # side of the rendered handwritten digit
    noise_std: tuple[float, float] = (20.0, 60.0)  # Gaussian pixel noise, std on 0-255
    distractors: tuple[int, int] = (1, 3)  # moving letters drawn over the clip
    miss: float = 0.15  # chance that a labelled digit is never on screen


@dataclass(frozen=True)
class TextKnobs:
    # Shares of title kinds; the rest carry no cue at all.
    named: float = 0.25  # names the label outright ("my son counting to seven")
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
    audio: AudioKnobs = field(default_factory=AudioKnobs)
    video: VideoKnobs = field(default_factory=VideoKnobs)
    text: TextKnobs = field(default_factory=TextKnobs)

    @property
    def split_sizes(self) -> dict[str, int]:
        return SIZES[self.size]

    def to_dict(self) -> dict:
        return asdict(self)
