"""A test job that asks a child process which run it works for, and fails its first attempt when told to."""

import json
import subprocess
import sys
from pathlib import Path

import hydra

import hpctrack


@hydra.main(config_path="conf", config_name="identity", version_base=None)
def main(cfg):
    run = hpctrack.start_run(cfg)
    child = subprocess.run([sys.executable, "-c", "import json, os; print(json.dumps({k: v for k, v in os.environ.items()"
                            " if k.startswith('HPCTRACK_') and k != 'HPCTRACK_ROOT'}))"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    seen = json.loads(child.stdout)
    Path(f"identity.{run.attempt}.json").write_text(json.dumps(
        {"child": seen, "run_id": run.run_id, "run_dir": str(run.dir), "attempt": run.attempt}))  # fmt: skip
    run.log({"attempt": float(run.attempt)}, step=run.attempt)
    if cfg.fail_first and run.attempt == 1:
        raise RuntimeError("the first attempt fails, as asked")


if __name__ == "__main__":
    main()
