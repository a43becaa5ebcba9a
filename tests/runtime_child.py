"""Child process for tests/test_runtime.py: use a Runtime and exit *without* closing it.

    python tests/runtime_child.py RUNTIME_DIR MLP_BMODEL

The atexit safety net must release the simulator (otherwise it segfaults at exit) and keep the
vendor's exit chatter off stdout. Prints nothing on stdout itself; "child done" on stderr.
"""

import sys

import numpy as np

from bmcrypt.runtime import Runtime

rt = Runtime(sys.argv[1])
rt.load(sys.argv[2])
rt.run("mlp", [np.zeros((1, 64), np.float32)])
sys.stderr.write("child done\n")
