"""alae: Adversarial Latent Autoencoders (Pidhorskyi, Adjeroh, Doretto, CVPR 2020) in PyTorch.

    import alae
    run = alae.train("mnist-mlp", "runs/short", ["train.kimg=60"])   # a preset (or YAML file or Config) -> alae.Run
    model = run.load()                         # its EMA model (alae.load("runs/short") does the same)
    w = model.encode(images)                   # images: paths, PIL images, arrays, tensors -> w [N, latent]
    x = model.decode(w)                        # w -> images [N, C, R, R] in [0, 1]
    x = model.generate(16, seed=0)             # G(F(z)); truncation=0.7 for the style networks
    x = model.reconstruct(images)              # G(E(x)); also model.mix, model.interpolate, model.truncate
    run = alae.import_checkpoint("model.pth", "runs/imported")       # the authors' checkpoint as a run

Every mistake a caller can make raises `alae.UserError` with a one-line message.
"""

from .config import Config
from .config import load as load_config
from .errors import UserError
from .model import ALAE, load
from .reference import import_checkpoint
from .run import Run
from .training import train_run as train

__version__ = "0.2.0"
__all__ = ["ALAE", "Config", "Run", "UserError", "import_checkpoint", "load", "load_config", "train", "__version__"]
