"""A 2-process DDP job on CPU (gloo) through train(config): both ranks end with the same model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

TESTS = Path(__file__).resolve().parents[1]  # where _tiny.py lives

SCRIPT = textwrap.dedent(
    """
    import json
    import sys
    from pathlib import Path

    import lightning as L
    import torch

    sys.path.insert(0, {tests!r})
    from _tiny import tiny_config

    from rdam.training.train import train

    RUN = Path({run!r})


    class DumpRank(L.Callback):
        def on_fit_end(self, trainer, pl_module):
            rank = trainer.global_rank
            params = {{n: p.detach().clone() for n, p in pl_module.model.named_parameters()}}
            torch.save(params, RUN / f"rank{{rank}}_params.pt")
            metrics = {{k: float(v) for k, v in trainer.callback_metrics.items()}}
            sampler = trainer.train_dataloader.sampler
            val_sampler = trainer.val_dataloaders.sampler
            info = {{
                "rank": rank,
                "world_size": trainer.world_size,
                "backend": str(torch.distributed.get_backend()),
                "global_step": trainer.global_step,
                "indices": list(iter(sampler)),
                "val_indices": list(iter(val_sampler)),
                "metrics": metrics,
            }}
            (RUN / f"rank{{rank}}.json").write_text(json.dumps(info))


    if __name__ == "__main__":
        config = tiny_config(
            trainer={{"strategy": "ddp", "devices": 2, "max_epochs": 2}},
            data={{"synthetic": {{"num_train": 32, "num_val": 15, "num_classes": 2}}}},
        )
        train(config, run_dir=RUN, resume=False, callbacks=[DumpRank()])
    """
)


def test_two_process_cpu_ddp_ranks_agree(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    script = tmp_path / "ddp_job.py"
    script.write_text(SCRIPT.format(tests=str(TESTS), run=str(run)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = [json.loads((run / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["rank"] for r in ranks] == [0, 1]
    assert all(r["world_size"] == 2 and r["backend"] == "gloo" for r in ranks)
    # 32 clips split over 2 ranks, batch 8 -> 2 steps per epoch, 2 epochs
    assert [r["global_step"] for r in ranks] == [4, 4]
    # each rank saw its own half of the data
    a, b = (set(r["indices"]) for r in ranks)
    assert not a & b and a | b == set(range(32))
    # validation: 15 clips, each on exactly one rank (no wrap padding counted twice)
    v0, v1 = (r["val_indices"] for r in ranks)
    assert (len(v0), len(v1)) == (8, 7) and sorted(v0 + v1) == list(range(15))
    correct = ranks[0]["metrics"]["val/acc"] * 15  # micro accuracy over the 15 clips, synced
    assert abs(correct - round(correct)) < 1e-4, ranks[0]["metrics"]["val/acc"]
    assert ranks[0]["metrics"] == ranks[1]["metrics"]
    p0 = torch.load(run / "rank0_params.pt", weights_only=True)
    p1 = torch.load(run / "rank1_params.pt", weights_only=True)
    assert p0.keys() == p1.keys()
    assert all(torch.equal(p0[k], p1[k]) for k in p0), "ranks ended with different weights"
    # rank 0 alone wrote the run's outputs
    assert (run / "model.safetensors").is_file()
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["global_step"] == 4
    assert summary["metrics"]["val/acc"] == ranks[0]["metrics"]["val/acc"]
