"""A Python program an --exec job runs: start_run() gives it the job's run, not a sweep of its own."""

import json
import sys

import hpctrack

with hpctrack.start_run({"inner": {"width": int(sys.argv[1])}}) as run:
    run.log({"inner_loss": 1.5}, step=0)
    run.log({"inner_loss": 0.5}, step=1)
    run.summary["inner_best"] = 0.5
    with open("inner.json", "w") as fh:
        json.dump({"run_id": run.run_id, "attempt": run.attempt}, fh)
