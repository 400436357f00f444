"""Who made a leftover entry, told well enough to sweep only what is provably ours and provably dead.

Shared-memory segments (``/dev/shm``) and chaos run directories (the temp
folder) outlive a process killed with SIGKILL, so the next pool sweeps those
whose creator is gone. But both folders may be shared with processes this
one cannot see: another container's, through a shared IPC namespace or a
shared ``/tmp``, where a pid means another process or none at all. A pid
that is missing here proves nothing about them. So an entry is swept only
when all of these hold:

* it was made in our PID namespace (the inode of ``/proc/self/ns/pid``:
  namespaces alive at the same time have distinct inodes), so its pid is a
  pid of ours;
* ``/proc`` shows our own namespace (after ``unshare --pid`` without
  ``--mount-proc`` it shows the parent's, where our pids name others);
* the entry belongs to our uid: the file system says so, not its name (run
  as root, a sweep could otherwise remove every user's entries);
* its creator, pid and start time together, no longer runs.

Each sweeper checks the first two here and the last two its own way.
"""
from __future__ import annotations

import os


def pid_namespace() -> int | None:
    """The inode of our PID namespace; None where it cannot be read (not Linux, no /proc)."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None


def boot_id() -> str | None:
    """This boot of this machine: tells a shared folder's entries of another host (or an earlier boot)."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip() or None
    except OSError:
        return None


def proc_is_ours() -> bool:
    """Whether ``/proc/<pid>`` names the processes of our own PID namespace."""
    try:
        return os.readlink("/proc/self") == str(os.getpid())
    except OSError:
        return False


def start_ticks(pid: int | str = "self") -> str | None:
    """When process ``pid`` started, in clock ticks since boot (with the pid: an identity never reused).

    None when there is no such process. ``"self"`` reads our own, which is
    right even where ``/proc`` is not our namespace's view.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    return stat.rsplit(b")", 1)[1].split()[19].decode()


def sweepable_here() -> int | None:
    """Our PID namespace, when this process can judge entries by pid at all; None: sweep nothing."""
    namespace = pid_namespace()
    return namespace if namespace is not None and proc_is_ours() else None


def ours(path: str) -> bool:
    """Whether ``path`` (not followed if a link) belongs to our effective uid."""
    try:
        return os.stat(path, follow_symlinks=False).st_uid == os.geteuid()
    except OSError:
        return False
