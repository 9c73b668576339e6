"""alae: Adversarial Latent Autoencoders (Pidhorskyi, Adjeroh, Doretto, CVPR 2020) in PyTorch.

`alae.load(run)` returns the EMA model of a run with `encode`, `decode`, `generate`.
"""

from .model import ALAE, load

__version__ = "0.1.0"
__all__ = ["ALAE", "load", "__version__"]
