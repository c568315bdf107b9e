"""A test job that writes a file under a relative name every job shares, then logs it as an artifact."""

import os
import time

import hydra
from hydra.utils import get_original_cwd, to_absolute_path

import hpctrack


@hydra.main(config_path="conf", config_name="own_files", version_base=None)
def main(cfg):
    with hpctrack.start_run(cfg) as run:
        with open("weights.txt", "w") as fh:  # the same relative name in every job
            fh.write(f"job x={cfg.x}\n")
        time.sleep(cfg.sleep_s)  # the other jobs write theirs meanwhile
        run.log_artifact("weights.txt")
        run.summary["in_run_dir"] = os.path.samefile(os.getcwd(), run.run_dir)
        run.summary["launch_dir"] = get_original_cwd()
        run.summary["absolute"] = to_absolute_path("data.csv")


if __name__ == "__main__":
    main()
