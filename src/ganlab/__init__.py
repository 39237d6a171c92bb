"""ganlab: a Hydra-configured experiment runner for generative adversarial networks."""

__version__ = "0.1.0"
