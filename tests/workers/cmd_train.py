"""A standalone 'training script' for command-mode tests: argparse in, @hq-sweep lines out."""

import argparse
import json

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, required=True)
parser.add_argument("--steps", type=int, default=3)
args = parser.parse_args()
for step in range(args.steps):
    print(f"epoch {step}: training")  # ordinary output passes through
    print("@hq-sweep " + json.dumps({"score": args.x * (step + 1), "step": step}), flush=True)
