"""Entry point of the child process behind ``isolate.run_isolated``; not for direct use.

    python -m bmcrypt.runtime._child JOB ANSWER LOG

JOB holds a pickled ``(fn, args, kwargs)``. The answer is written to ANSWER as a pickled tuple:
``("ok", result)``, ``("error", class name, message, hint, notes)`` for a ``BmcryptError``, or
``("failure", class name, message)`` for anything else. No ANSWER file means the child died.
The parent already points fds 1 and 2 at LOG.
"""

from __future__ import annotations

import os
import pickle
import sys
from typing import Any

from bmcrypt.errors import BmcryptError
from bmcrypt.runtime.capture import send_process_output_to
from bmcrypt.runtime.lifecycle import exit_now


def main(job: str, answer: str, log: str) -> None:
    # Captured vendor calls read LOG back instead of redirecting again, so that output written
    # just before a crash stays in LOG for the parent.
    send_process_output_to(log)
    with open(job, "rb") as f:
        fn, args, kwargs = pickle.load(f)
    message: tuple[Any, ...]
    try:
        message = ("ok", fn(*args, **kwargs))
    except BmcryptError as e:
        message = ("error", type(e).__name__, e.message, e.hint, list(getattr(e, "__notes__", [])))
    except BaseException as e:  # everything must reach the parent as a message
        message = ("failure", type(e).__name__, str(e))
    # Write-then-rename: a crash while writing must look like "no answer", not a torn pickle.
    try:
        data = pickle.dumps(message)
    except Exception as e:  # an unpicklable result or error
        data = pickle.dumps(("failure", type(e).__name__, f"cannot send the result back: {e}"))
    tmp = answer + ".part"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, answer)
    # The answer is safe; skip the vendor's ~1.3 s exit teardown (see lifecycle).
    exit_now(0)


if __name__ == "__main__":
    main(*sys.argv[1:4])
