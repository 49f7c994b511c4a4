"""A task that works for SECONDS in steps, reporting progress; a restart resumes
from OPSDECK_RESUME_PROGRESS (the context a replacement agent was given)."""

import os
import sys
import time

total = float(sys.argv[1]) if len(sys.argv) > 1 else 20.0
done = float(os.environ.get("OPSDECK_RESUME_PROGRESS") or 0.0)
step = 0.5
while done < 1.0:
    time.sleep(step)
    done = min(1.0, done + step / total)
    print(f"OPSDECK_PROGRESS {done:.4f} working", flush=True)
