"""A test job on several ranks: torch.distributed (gloo, CPU), every rank logs, all-reducing each step."""

import hydra

import hpctrack


@hydra.main(config_path="conf", config_name="ddp", version_base=None)
def main(cfg):
    import submitit
    import torch
    import torch.distributed as dist

    env = submitit.helpers.TorchDistributedEnvironment().export()  # RANK, WORLD_SIZE, MASTER_ADDR/PORT
    dist.init_process_group("gloo", rank=env.rank, world_size=env.world_size)
    try:
        with hpctrack.start_run(cfg) as run:
            for step in range(cfg.steps):
                total = torch.tensor([float(dist.get_rank() + 1)])
                dist.all_reduce(total)
                run.log({"sum": total.item(), "rank": float(dist.get_rank())}, step=step)
            run.summary["world_size"] = dist.get_world_size()
            run.summary[f"rank{dist.get_rank()}"] = True
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
