"""Chaos for foreign pools in every Python process: run at start-up by ``mpire_fault_chaos.pth``.

The ``.pth`` file that ``pip install mpire_fault`` puts in site-packages
imports this module in every interpreter, as coverage.py's start-up hook
does. It does nothing unless ``MP_CHAOS`` is set (and ``MP_CHAOS_SUBPROCESS``
is not ``0``); then it waits, at no cost, until the program imports one of
the pool modules below, and only then imports ``mpire_fault`` and patches
the pools (``mpire_fault.chaos.patching.install_from_environment``). So
``pytest --mp-chaos`` reaches a script a test runs, and ``MP_CHAOS=...
python script.py`` reaches the pools of an unmodified program. It must stay
tiny and must never break an interpreter: any error is one line on stderr.

PYTEST_DONT_REWRITE: pytest marks every module of a distribution with a
pytest11 entry point for assertion rewriting, and warns about one that is
already imported, as this one always is; this marker tells it not to.
"""
import os
import sys

WATCHED = frozenset({"multiprocessing.pool", "concurrent.futures.process", "loky.process_executor",
                     "joblib.externals.loky.process_executor", "mpire.pool"})


def wanted(environ=os.environ):
    return bool(environ.get("MP_CHAOS", "").strip()) and environ.get("MP_CHAOS_SUBPROCESS", "").strip() != "0"


def _patch():
    try:
        from mpire_fault.chaos.patching import install_from_environment

        install_from_environment()
    except Exception as exc:  # noqa: BLE001 - a start-up hook must not take the user's program down
        sys.stderr.write(f"mpire_fault chaos: could not patch foreign pools: {exc!r}\n")


class AfterImport:
    """A meta path finder that calls ``then(module)`` right after a module it ``wants`` (by name) has run.

    It finds the module's real spec through the rest of ``sys.meta_path`` and
    wraps only the loader's ``exec_module``; once the module has run, the
    module and its spec get their own loader back. ``chaos.patching`` uses it
    too, for pool modules imported after a test's patches were installed.
    """

    def __init__(self, wants, then):
        self.wants = wants
        self.then = then
        self._busy = set()

    def find_spec(self, name, path=None, target=None):
        if name in self._busy or not self.wants(name):
            return None
        import importlib.util

        self._busy.add(name)
        try:
            spec = importlib.util.find_spec(name)
        except Exception:  # noqa: BLE001 - leave the import to the usual machinery and its errors
            return None
        finally:
            self._busy.discard(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        spec.loader = _Loader(spec.loader, self.then)
        return spec


class _Loader:
    def __init__(self, loader, then):
        self.loader = loader
        self.then = then

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = self.loader  # the module keeps its own loader; this one only notices the import
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        self.then(module)


def _fire(trigger):
    """Patches once, right after the first pool module has been imported (and then steps aside)."""
    if trigger in sys.meta_path:
        sys.meta_path.remove(trigger)
        _patch()


def install():
    if not wanted():
        return
    if any(name in sys.modules for name in WATCHED):
        _patch()
    else:
        trigger = AfterImport(WATCHED.__contains__, lambda module: _fire(trigger))
        sys.meta_path.insert(0, trigger)


install()
