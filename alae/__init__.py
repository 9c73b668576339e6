"""alae: Adversarial Latent Autoencoders (Pidhorskyi, Adjeroh, Doretto, CVPR 2020) in PyTorch.

    import alae
    model = alae.load("runs/mnist")            # a run's EMA model (or weights="live")
    w = model.encode(images)                   # images: paths, PIL images, arrays, tensors -> w [N, latent]
    x = model.decode(w)                        # w -> images [N, C, R, R] in [0, 1]
    x = model.generate(16, seed=0)             # G(F(z)); truncation=0.7 for the style networks
    x = model.reconstruct(images)              # G(E(x))

    cfg = alae.load_config("mnist-mlp", ["train.kimg=60"])    # a preset (or YAML file) with overrides
    alae.train.train(cfg, "runs/short")                       # train into a run directory
    run = alae.Run("runs/short")                              # its files: run.config(), run.checkpoints(), ...

Every mistake a caller can make raises `alae.UserError` with a one-line message.
"""

from . import train
from .config import Config
from .config import load as load_config
from .errors import UserError
from .model import ALAE, load
from .run import Run

__version__ = "0.1.0"
__all__ = ["ALAE", "Config", "Run", "UserError", "load", "load_config", "train", "__version__"]
