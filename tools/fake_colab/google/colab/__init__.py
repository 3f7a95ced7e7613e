"""A stand-in for Colab's `google.colab`, for the Colab-like test (tools/fake_colab/README.md).

Like Colab's runtime, the test's kernel imports it at start, so `"google.colab" in sys.modules`
is true in every lesson. Only what the lessons use is here: `output` and `drive`.
"""

import json
import os
import time

__version__ = "0.0.0+fake"


def _record(call: str, **details: object) -> None:
    """Append `call` and `details` as one JSON line to `$FAKE_COLAB_LOG` (when it is set)."""
    log = os.environ.get("FAKE_COLAB_LOG")
    if log:
        with open(log, "a") as f:
            f.write(json.dumps({"call": call, "pid": os.getpid(), "time": time.time(),
                                **details}) + "\n")


from . import drive, output  # noqa: E402  (they use _record)

__all__ = ["drive", "output"]
