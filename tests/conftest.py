"""Suite-wide settings, inherited by every `singac` the tests start.

GEMM autotuning (runtime/autotune.py) stays off here even where a user's environment turns
it on: it measures kernels on the machine, which costs seconds per new shape and makes
kernel choices depend on the load of the moment — tests want the same kernels every run.
Its own tests turn it on explicitly.
The tuning cache lives in a temporary folder, never in the user's ~/.cache."""
import os
import tempfile

os.environ.setdefault("SINGA_TUNE", "0")      # (the default too; a user's =1 is not wanted)
os.environ.setdefault("SINGA_TUNE_CACHE",
                      os.path.join(tempfile.mkdtemp(prefix="singa-tests-tune-"), "gemm.json"))
