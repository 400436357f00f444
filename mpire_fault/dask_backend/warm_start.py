"""What the forkserver of an owned cluster preloads (see ``cluster._fast_worker_starts``).

Every worker forked from it starts with this module's work done: our worker
side imported, and the package versions and platform facts a Dask worker
sends the scheduler when it registers already looked up. Computed in each
new worker, those facts took about 6 ms of its 31 ms of CPU before its first
task, and ran ``uname -p`` as a subprocess.
"""
from __future__ import annotations

from distributed.versions import get_versions

from . import remote  # noqa: F401 - imported so that each forked worker has it

get_versions()  # cached for the process (functools and platform's own caches), so for its forked children too
