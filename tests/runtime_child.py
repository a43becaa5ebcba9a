"""Child process for tests/test_runtime.py: use a Runtime, then end the process *without* close().

    python tests/runtime_child.py RUNTIME_DIR MLP_BMODEL atexit|exit_now

``atexit``: fall off the end; the atexit safety net must release the simulator (otherwise it
segfaults at exit) and keep the vendor's exit chatter off stdout. ``exit_now``: leave through
``bmcrypt.runtime.exit_now(3)``. Prints nothing on stdout itself; "child done" on stderr.
"""

import sys

import numpy as np

from bmcrypt.runtime import Runtime, exit_now

rt = Runtime(sys.argv[1])
rt.load(sys.argv[2])
rt.run("mlp", [np.zeros((1, 64), np.float32)])
sys.stderr.write("child done\n")
if sys.argv[3] == "exit_now":
    exit_now(3)
