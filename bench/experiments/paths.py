"""Puts the repository and bench/ on sys.path, so that these one-off experiments
(run from anywhere: `python bench/experiments/<script>.py`) import `adder_tf`
and `adder_bench` from this checkout. Import it before either."""
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path[:0] = [os.path.join(ROOT, "bench"), ROOT]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
