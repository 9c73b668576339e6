"""Configuration: dataclasses for model, training and data, YAML presets, CLI overrides.

A preset is a YAML file in `alae/configs/` with the sections `model`, `train` and
`data`; every key must name a field below, and every value must have the field's type.
`--set train.lr=0.001` overrides one key; values are parsed as YAML scalars.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import UserError

PRESET_DIR = Path(__file__).parent / "configs"


@dataclass
class ModelConfig:
    kind: str = "alae"          # "alae" (Algorithm 1), "ae" (pixel autoencoder baseline of Table 2) or
                                # "vae" (beta-VAE with the same E and G: Higgins et al. 2017)
    net: str = "mlp"            # network family of G and E: "mlp" (section 7.1), "conv" (disentanglement_lib's
                                # convolutional E and G, alae/nets/conv.py) or "style" (section 5)
    latent_size: int = 50       # size of z and w
    resolution: int = 28        # image side in pixels, 4 to 1024 (style: a power of two)
    channels: int = 1           # 1 (grayscale) or 3 (RGB)
    hidden: int = 1024          # width of the hidden layers of E and G (mlp), of their dense hidden layer (conv)
    e_out_slope: float = 0.2    # leaky ReLU slope after E's output layer (mlp, conv; reference code 0.01)
    g_slope: float = 0.2        # leaky ReLU slope after G's hidden layers (mlp, conv; reference code 0.01)
    g_out_slope: float = 1.0    # leaky ReLU slope after G's output layer (mlp, conv; 1: linear, as paper and reference)
    start_ch: int = 64          # feature maps at the highest resolution (style)
    max_ch: int = 256           # cap on feature maps per level (style)
    style_mixing_prob: float = 0.9  # probability of mixing two w's in G's style inputs (style)
    truncation_psi: float = 0.7     # truncation toward the average w for figures (style)
    truncation_cutoff: int = 8      # truncation applies to the first this many style inputs (style)
    w_avg_beta: float = 0.995       # EMA factor of the average w used by truncation (style)
    f_layers: int = 6           # depth of the mapping F; 0: F is the identity, w = z (mlp, conv)
    d_layers: int = 3           # depth of the discriminator head D
    fd_width: int = 0           # width of F and D hidden layers; 0 means latent_size
    f_lrmul: float = 0.1        # learning-rate multiplier of F's layers
    d_lrmul: float = 0.1        # learning-rate multiplier of D's layers
    d_nonlinear: bool = True    # leaky ReLU between D's layers; false: D linear in w (reference code)
    ae_loss: str = "l2"         # pixel loss of the "ae" baseline: "l1" or "l2"
    vae_beta: float = 1.0       # weight of the KL term of the "vae" kind (beta; 1 is the plain VAE), until
                                # train.vae_beta_late_kimg

    @property
    def levels(self) -> int:
        """Resolution levels of progressive growing: log2(resolution) - 1 for style networks, else 1."""
        return int(math.log2(self.resolution)) - 1 if self.net == "style" else 1


@dataclass
class TrainConfig:
    kimg: float = 600.0         # training length in thousands of real images shown
    batch_size: int = 128       # images per iteration (unless level_batch gives one per level)
    lr: float = 0.002           # Adam learning rate of every optimizer (unless level_lr gives one per level)
    level_kimg: float = 600.0   # images per level of progressive growing (style), in kimg
    fade_kimg: float = 300.0    # the first this many kimg of a new level fade it in (style)
    level_epochs: int = 0       # style: levels counted in epochs, as the reference's lod_driver (alae/schedule.py);
                                # 0: in kimg (level_kimg, fade_kimg)
    blend_size: int = 0         # style, with level_epochs: the dataset size the reference's fade counts by
                                # (its DATASET.SIZE); 0: the training set's size
    level_batch: list[int] = field(default_factory=list)  # batch per level, 4x4 first; the last repeats
    level_lr: list[float] = field(default_factory=list)   # learning rate per level, 4x4 first; the last repeats
    lr_rampdown: float = 0.0    # over this last fraction of train.kimg the learning rate falls to 0 (sine ease);
                                # resuming with a larger kimg moves the ramp
    beta1: float = 0.0          # Adam beta1
    beta2: float = 0.99         # Adam beta2
    r1_gamma: float = 10.0      # weight of the R1 penalty on real data (step 1)
    r1_every: int = 1           # lazy R1: the penalty in every this many iterations' step 1, weighted by it
                                # (StyleGAN2's lazy regularisation); 1: every iteration, as the reference
    ae_trains_F: bool = False   # let step 3 also update F, as the reference code does
    d_zero_grad_step: bool = False  # step 3 also steps D's Adam on a zero gradient, as the reference code
                                # (PyTorch 1.x zero_grad): D's second moment decays twice per iteration
    vae_beta_late_kimg: float = 0.0  # beta-VAE: from this many kimg on, the KL weight is train.vae_beta_late
                                # instead of model.vae_beta (alae/schedule.py); 0: model.vae_beta throughout
    vae_beta_late: float = 1.0  # beta-VAE: the KL weight from train.vae_beta_late_kimg on
    ema_kimg: float = 10.0      # EMA half-life in kimg: beta = 0.5 ** (batch / (1000 * ema_kimg))
    seed: int = 0               # seeds weights, data order and every noise input
    log_kimg: float = 6.0       # one line of stats.jsonl per this many kimg
    checkpoint_kimg: float = 60.0  # one checkpoint per this many kimg (and one at the end)
    keep_checkpoints: int = 3   # how many recent checkpoints to keep
    threads: int = 0            # torch intra-op threads; 0 keeps torch's default
    device: str = "auto"        # "auto" (cuda if available), "cpu", "cuda" or "cuda:N"
    precision: str = "fp32"     # "fp32", or "bf16": networks under bf16 autocast, losses and R1 in fp32


@dataclass
class DataConfig:
    dataset: str = "mnist"      # "mnist", "fashion-mnist" (style nets see them padded to 32x32),
                                # or the folder of a dataset made by `alae dataset make`
    root: str = ""              # folder with the idx files; empty uses the bundled copy
    mirror: bool = False        # flip half the training images horizontally, picked anew each epoch from the seed
                                # (the reference's DATASET.FLIP_IMAGES: on for faces and bedrooms, off for MNIST)
    split: str = "dw"           # MNIST family: "dw" trains on the official 60k training images (Table 2's
                                # DW protocol), "sw" on the 50k SW train part only (its SW protocol)


@dataclass
class ReportConfig:
    table2: bool = True         # run the Table 2 protocol at the end of training
    table2_weights: str = "ema"  # Table 2 features from the "ema" encoder or the "live" one (reference code)
    figures: bool = True        # draw the reconstruction and traversal figures


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    report: ReportConfig = field(default_factory=ReportConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


CHOICES = {
    ("model", "kind"): ("alae", "ae", "vae"),
    ("model", "net"): ("mlp", "conv", "style"),
    ("model", "ae_loss"): ("l1", "l2"),
    ("model", "channels"): (1, 3),
    ("train", "precision"): ("fp32", "bf16"),
    ("data", "split"): ("dw", "sw"),
    ("report", "table2_weights"): ("ema", "live"),
}
POSITIVE = {
    ("model", "latent_size"), ("model", "resolution"), ("model", "hidden"),
    ("model", "d_layers"), ("model", "f_lrmul"), ("model", "d_lrmul"),
    ("train", "kimg"), ("train", "batch_size"), ("train", "lr"), ("train", "ema_kimg"),
    ("train", "log_kimg"), ("train", "r1_every"), ("train", "checkpoint_kimg"), ("train", "keep_checkpoints"),
    ("model", "start_ch"), ("model", "max_ch"), ("model", "truncation_cutoff"), ("model", "w_avg_beta"),
    ("train", "level_kimg"),
}


def presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def _coerce(key: str, value, kind):
    """Return `value` as type `kind` (a scalar type or list[scalar]), or raise a UserError naming `key`."""
    if typing.get_origin(kind) is list:
        (item,) = typing.get_args(kind)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]
        if isinstance(value, list):
            return [_coerce(key, v, item) for v in value]
        raise UserError(f"config key {key}: expected a list of {item.__name__}, got {value!r}")
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif kind is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    raise UserError(f"config key {key}: expected {kind.__name__}, got {value!r}")


def _apply(cfg: Config, section: str, name: str, value) -> None:
    key = f"{section}.{name}"
    sections = {f.name: f for f in dataclasses.fields(Config)}
    if section not in sections:
        raise UserError(f"unknown config key {key} (sections: {', '.join(sections)})")
    obj = getattr(cfg, section)
    hints = typing.get_type_hints(type(obj))
    if name not in hints:
        raise UserError(f"unknown config key {key}")
    setattr(obj, name, _coerce(key, value, hints[name]))


def _merge(cfg: Config, tree: dict, origin: str) -> None:
    if not isinstance(tree, dict):
        raise UserError(f"{origin}: a config must be a mapping of sections")
    for section, values in tree.items():
        if not isinstance(values, dict):
            raise UserError(f"config key {section}: expected a mapping of keys, in {origin}")
        for name, value in values.items():
            _apply(cfg, section, name, value)


def _check_finite(cfg: Config) -> None:
    """Refuse NaN and infinite numbers anywhere in the config, naming the key."""
    for section in dataclasses.fields(Config):
        obj = getattr(cfg, section.name)
        for item in dataclasses.fields(obj):
            value = getattr(obj, item.name)
            for v in value if isinstance(value, list) else [value]:
                if isinstance(v, float) and not math.isfinite(v):
                    raise UserError(f"config key {section.name}.{item.name}: must be a finite number, got {v}")


def validate(cfg: Config) -> Config:
    """Check choices and ranges; raise a UserError naming the first bad key."""
    _check_finite(cfg)
    for (section, name), allowed in CHOICES.items():
        value = getattr(getattr(cfg, section), name)
        if value not in allowed:
            raise UserError(f"config key {section}.{name}: {value!r} is not one of {list(allowed)}")
    for section, name in POSITIVE:
        value = getattr(getattr(cfg, section), name)
        if not value > 0:
            raise UserError(f"config key {section}.{name}: must be positive, got {value!r}")
    if not 0.0 <= cfg.train.beta1 < 1.0 or not 0.0 <= cfg.train.beta2 < 1.0:
        raise UserError("config key train.beta1/train.beta2: Adam betas must lie in [0, 1)")
    if not 0.0 <= cfg.train.lr_rampdown <= 1.0:
        raise UserError(f"config key train.lr_rampdown: a fraction of training, from 0 to 1; got {cfg.train.lr_rampdown}")
    if cfg.train.r1_gamma < 0:
        raise UserError(f"config key train.r1_gamma: must be >= 0, got {cfg.train.r1_gamma}")
    for name in ("level_epochs", "blend_size"):
        if getattr(cfg.train, name) < 0:
            raise UserError(f"config key train.{name}: must be >= 0, got {getattr(cfg.train, name)}")
    if cfg.train.threads < 0:
        raise UserError(f"config key train.threads: must be >= 0, got {cfg.train.threads}")
    if not (cfg.train.device in ("auto", "cpu", "cuda") or cfg.train.device.startswith("cuda:")):
        raise UserError(f"config key train.device: {cfg.train.device!r} is not auto, cpu, cuda or cuda:N")
    if cfg.model.net == "mlp" and not 4 <= cfg.model.resolution <= 1024:
        raise UserError(f"config key model.resolution: must lie from 4 to 1024, got {cfg.model.resolution}")
    if cfg.model.net == "conv" and (cfg.model.resolution % 16 or not 16 <= cfg.model.resolution <= 1024):
        raise UserError(f"config key model.resolution: a multiple of 16 from 16 to 1024 for the conv net, "
                        f"got {cfg.model.resolution}")
    if cfg.model.f_layers < 0 or (cfg.model.f_layers == 0 and cfg.model.net == "style"):
        raise UserError(f"config key model.f_layers: must be positive (0, F the identity, for the mlp and conv nets), "
                        f"got {cfg.model.f_layers}")
    for key, value in (("model.vae_beta", cfg.model.vae_beta), ("train.vae_beta_late", cfg.train.vae_beta_late),
                       ("train.vae_beta_late_kimg", cfg.train.vae_beta_late_kimg)):
        if value < 0:
            raise UserError(f"config key {key}: must be >= 0, got {value}")
    if cfg.train.vae_beta_late_kimg and cfg.model.kind != "vae":
        raise UserError(f"config key train.vae_beta_late_kimg: a beta-VAE's schedule, and model.kind is {cfg.model.kind}")
    if cfg.model.net == "style":
        r = cfg.model.resolution
        if r < 4 or r > 1024 or r & (r - 1):
            raise UserError(f"config key model.resolution: must be a power of two from 4 to 1024, got {r}")
        if cfg.model.kind != "alae":
            raise UserError("config key model.kind: the style networks train as ALAE only")
    vae_outputs = {"g_out_slope": "G gives pixel logits", "e_out_slope": "E gives a mean and a log-variance"}
    for name, gives in vae_outputs.items():
        if cfg.model.kind == "vae" and getattr(cfg.model, name) != 1:
            raise UserError(f"config key model.{name}: a VAE's {gives}, its output stays linear (1)")
    for name in ("e_out_slope", "g_slope", "g_out_slope"):
        if not 0.0 <= getattr(cfg.model, name) <= 1.0:
            raise UserError(f"config key model.{name}: a leaky ReLU slope must lie in [0, 1] (1: linear), "
                            f"got {getattr(cfg.model, name)}")
    if cfg.data.split == "sw" and cfg.data.dataset not in ("mnist", "fashion-mnist"):
        raise UserError("config key data.split: the SW split exists for mnist and fashion-mnist only")
    if not 0.0 <= cfg.model.style_mixing_prob <= 1.0:
        raise UserError(f"config key model.style_mixing_prob: must lie in [0, 1], got {cfg.model.style_mixing_prob}")
    for name in ("level_batch", "level_lr"):
        if any(v <= 0 for v in getattr(cfg.train, name)):
            raise UserError(f"config key train.{name}: every value must be positive")
    if not 0 <= cfg.train.fade_kimg <= cfg.train.level_kimg:
        raise UserError("config key train.fade_kimg: must lie between 0 and train.level_kimg")
    return cfg


def from_dict(tree: dict, origin: str = "config") -> Config:
    cfg = Config()
    _merge(cfg, tree, origin)
    return validate(cfg)


def load(name_or_path: str, overrides: list[str] = ()) -> Config:
    """Build a config from a preset name or a YAML path, then apply `key=value` overrides."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PRESET_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise UserError(f"unknown config preset {name_or_path!r} (presets: {', '.join(presets())})")
    elif not path.is_file():
        raise UserError(f"config file not found: {name_or_path}")
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise UserError(f"config file {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    cfg = Config()
    _merge(cfg, tree, str(path))
    for item in overrides:
        apply_override(cfg, item)
    return validate(cfg)


def apply_override(cfg: Config, item: str) -> None:
    """Apply one `section.key=value` override; the value is read as a YAML scalar."""
    key, sep, text = item.partition("=")
    if not sep or "." not in key:
        raise UserError(f"--set takes section.key=value, got {item!r}")
    section, _, name = key.partition(".")
    try:
        value = yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        value = text
    _apply(cfg, section, name, value)
