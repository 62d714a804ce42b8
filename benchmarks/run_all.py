"""Run every benchmark in turn (each writes benchmarks/results/<name>.json)."""
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for script in ("train_throughput.py", "gui_overhead.py", "metrics_cost.py", "time_to_digits.py",
               "gan_throughput.py", "style_mix_latency.py", "ui_stall.py", "mask_editor_latency.py",
               "inpaint_speed.py", "efficiency.py", ("efficiency.py", "--switches"), "diffusers_sampling.py",
               "likelihood_families.py"):   # the last: 5 minutes of training per preset
    args = [script] if isinstance(script, str) else list(script)
    print(f"== {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, *args], cwd=HERE, check=True)
