"""Train a GAN: `python train.py [experiment=NAME] [key=value ...]` (see README.md)."""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from ganlab.config import register_configs, validate
from ganlab.errors import UserError, fail, run_reporting_user_errors

register_configs(Path(__file__).resolve().parent / "experiments")


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float:
    try:
        validate(cfg)
        from ganlab.run import train  # torch loads only once the config is known to be valid

        return train(cfg)
    except UserError as error:
        fail(error)  # exits here, before Hydra adds its own report of the failed job


if __name__ == "__main__":
    run_reporting_user_errors(main)
