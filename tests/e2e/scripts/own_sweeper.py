"""A test job whose own config chooses its sweeper (hpctrack_optimize) in its defaults."""

import hydra


@hydra.main(config_path="conf", config_name="own_sweeper", version_base=None)
def main(cfg):
    return 0.0


if __name__ == "__main__":
    main()
