"""The models a server serves, each at one current version, and the swap of a version for a newer
one without dropping a request (Triton's model repository, for mmrt bundles). No torch.

A swap: the new version is verified, loaded and warmed beside the old one (a bundle that fails
any of it never takes traffic, and the old version keeps serving); then new requests go to it, in
one assignment under the lock; requests already running on the old version, and open sequences
that started there, finish on it; when none is left it is closed and its memory handed back.
New versions come from the repository folder (``poll`` control: polled every ``poll_s``) or from
load calls (``explicit`` control); with ``none`` what serves at start is what serves (Triton's
--model-control-mode). A client's model name is a name in the repository, never a path, and no
message to a client carries a server path or an exception's text.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from mmrt.errors import UserError
from mmrt.runtime.backends.memory import release_memory
from mmrt.runtime.engine.ratelimit import RateLimitedLog
from mmrt.runtime.engine.status import InferError, Status, invalid, public, shown
from mmrt.runtime.protocol.kserve import KServeModel, sequence_flags
from mmrt.runtime.protocol.layout import Layout, fingerprint, model_folder, model_versions, read_layout
from mmrt.runtime.protocol.versions import Model, Version

log = logging.getLogger(__name__)
warn = RateLimitedLog(log)

# bundle folder, model name (None: a bundle served alone), version -> a loaded, warmed model, or UserError
Opener = Callable[[Path, str | None, int], KServeModel]
REAP_S = 0.05  # how often retiring versions are checked for the last request to finish
CONTROL_MODES = ("none", "poll", "explicit")
LOAD_FAILED = "the runtime could not load it; the server's log has the details"  # for anything not ours


def _sequence(request):
    """A request's sequence flags, or None (none, or malformed: the version refuses it then)."""
    if request is None:
        return None
    try:
        return sequence_flags(request)
    except InferError:
        return None


class Repository:
    def __init__(self, root: str | Path, opener: Opener, control: str | None = None, poll_s: float = 5.0):
        """``control``: "none", "poll" or "explicit" (None: "none" for one bundle, "poll" for a
        repository)."""
        self.layout: Layout = read_layout(root)
        self.control = control or ("none" if self.layout.single else "poll")
        if self.control not in CONTROL_MODES:
            raise UserError(f"--model-control {self.control}: expected one of {', '.join(CONTROL_MODES)}")
        if self.layout.single and self.control != "none":
            raise UserError(f"--model-control {self.control}: serving one bundle, nothing can be polled or "
                            f"loaded (serve a model repository, REPO/<model>/<version>/)")
        if self.control == "poll" and poll_s <= 0:
            raise UserError(f"--poll-s {poll_s:g}: expected more than 0 (for load calls only: "
                            f"--model-control explicit)")
        self.root, self.opener, self.poll_s = self.layout.root, opener, poll_s
        self.lock = threading.Lock()  # models, versions and in-flight counts
        self.loading = threading.Lock()  # one load at a time; a load call finding it held is refused
        self.models: dict[str, Model] = {}
        self._draining = False
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="mmrt-repository", daemon=True)
        try:
            for name in self.layout.models:
                with self.loading:
                    self._load(name, fatal=True)
        except BaseException:
            self.close()
            raise
        self.thread.start()

    # ---- routing
    def acquire(self, name: str, version: str, request=None) -> Version:
        """The version that answers this call (counted in flight until ``release``): the current
        one; a retiring one only for the continuation of a sequence it holds."""
        with self.lock:
            model = self.models.get(name)
            if model is None or model.current is None:
                raise InferError(Status.NOT_FOUND, f"model {shown(name)}: not served here")
            current: Version = model.current
            flags = _sequence(request)
            retiring = [v for v in reversed(model.loaded) if v is not current]
            chosen = current
            if flags is not None and not flags.start:  # a sequence goes on where it started
                holders = (v for v in [current, *retiring] if flags.id in v.api.engine.sequences)
                chosen = next(holders, current)
            if version and version != str(chosen.number):
                raise InferError(Status.NOT_FOUND, f"model {shown(name)} version {shown(version)}: not "
                                 f"served (serving version {current.number})")
            if flags is not None and flags.start:  # started again here: the client left its namesake
                for v in retiring:
                    v.api.engine.sequences.end(flags.id)
            chosen.inflight += 1
            return chosen

    def release(self, version: Version) -> None:
        with self.lock:
            version.inflight -= 1

    def call(self, name: str, version: str, fn: Callable[[KServeModel], object], request=None):
        v = self.acquire(name, version, request)
        try:
            return fn(v.api)
        finally:
            self.release(v)

    def loaded(self, name: str) -> list[Version]:
        with self.lock:
            model = self.models.get(name)
            return sorted(model.loaded, key=lambda v: v.number) if model else []

    def serving(self) -> list[KServeModel]:
        with self.lock:
            return [m.current.api for m in self.models.values() if m.current is not None]

    def index(self) -> list[dict]:
        """Every version on disk or loaded: name, version, state and why (the index call's rows)."""
        try:
            on_disk = read_layout(self.root).models
        except UserError:
            on_disk = {}
        rows = []
        with self.lock:
            for name in sorted(set(on_disk) | set(self.models)):
                model = self.models.get(name) or Model(name)
                for n in sorted(set(on_disk.get(name, {})) | {v.number for v in model.loaded}):
                    state, reason = model.state(n)
                    rows.append({"name": name, "version": str(n), "state": state, "reason": reason})
        return rows

    @property
    def draining(self) -> bool:
        return self._draining

    @draining.setter
    def draining(self, value: bool) -> None:
        with self.lock:
            self._draining = value
            for model in self.models.values():
                for v in model.loaded:
                    v.api.draining = value

    # ---- load and unload calls (``explicit`` control)
    def check_call(self, name: str) -> None:
        """Refuse a load or unload call this server does not take, or a name that is not a model
        folder directly in the repository."""
        if self.control != "explicit":
            why = "serving one bundle" if self.layout.single else f"--model-control {self.control}"
            raise InferError(Status.FAILED_PRECONDITION, f"{why}: load and unload calls are refused (start "
                             f"the server with --model-control explicit to take them)")
        if self._draining:
            raise InferError(Status.UNAVAILABLE, "the server is shutting down")
        model_folder(self.root, name)  # InferError naming what a model name must be

    def try_lock_loading(self) -> None:
        """Take the loading lock for a load call, or refuse at once: loads are never queued."""
        if not self.loading.acquire(blocking=False):
            raise InferError(Status.UNAVAILABLE, "a load is in progress; try again when it has finished")

    def load_locked(self, name: str) -> int:
        """A load call's work, with the loading lock already held (``try_lock_loading``): released here."""
        try:
            return self._load(name)
        finally:
            self.loading.release()

    def unload(self, name: str) -> None:
        """Stop serving ``name``: new calls get NOT_FOUND; running ones finish; a load already
        running for it is discarded when it ends."""
        with self.lock:
            model = self.models.get(name)
            if model is None or model.current is None:
                raise InferError(Status.NOT_FOUND, f"model {shown(name)}: not loaded")
            model.current, model.unloaded = None, True
            model.generation += 1
        log.info("model %s: unloading (running requests finish first)", name)

    # ---- loading and swapping
    def _load(self, name: str, fatal: bool = False) -> int:
        """Serve the newest version of ``name`` in the repository (a no-op if it already does);
        returns the version serving. A version that fails never serves; the old one keeps on.
        Called with the loading lock held."""
        try:
            versions = self.layout.models[name] if fatal else model_versions(model_folder(self.root, name))
        except UserError as e:
            raise invalid(public(e.summary, self.root)) from None
        if not versions:
            raise InferError(Status.NOT_FOUND, f"model {shown(name)}: no version folder in the repository")
        number = max(versions)
        folder, mark = versions[number], fingerprint(versions[number])
        with self.lock:
            model = self.models.setdefault(name, Model(name))
            generation, current = model.generation, model.current
            if current is not None and (current.number, current.fingerprint) == (number, mark):
                return number
        try:
            api = self.opener(folder, None if self.layout.single else name, number)
        except Exception as e:  # noqa: BLE001 - any failure keeps the old version serving
            if fatal:
                raise
            log.warning("model %s version %d failed to load (%s)", name, number,
                        e if isinstance(e, UserError) else f"{type(e).__name__}: {e}")
            reason = public(e.summary, self.root) if isinstance(e, UserError) else LOAD_FAILED
            with self.lock:
                model.failed[number] = (mark, reason)
            keeping = f"version {current.number} keeps serving" if current else "nothing serves it"
            raise invalid(f"model {name!r} version {number} failed to load ({reason}); {keeping}") from None
        with self.lock:
            if model.generation != generation:  # unloaded meanwhile: the unload stands
                api.engine.close()
                raise InferError(Status.UNAVAILABLE, f"model {name!r} was unloaded while version {number} "
                                 f"was loading; it stays unloaded (load it again to serve it)")
            api.draining = self._draining
            model.current = Version(number, folder, api, mark)  # the swap: new requests go to it
            model.loaded.append(model.current)
            model.failed.pop(number, None)
            model.unloaded = False
        log.info("model %s: serving version %d from %s%s", name, number, folder,
                 f" (version {current.number} finishes what it has, then unloads)" if current else "")
        return number

    def _reap(self) -> None:
        """Close every version no longer current once its last request and sequence are done."""
        done = []
        with self.lock:
            for model in self.models.values():
                done += [v for v in model.loaded if v is not model.current and v.idle()]
                model.loaded = [v for v in model.loaded if v not in done]
        for v in done:
            v.api.engine.close()
            log.info("model %s version %d unloaded", v.api.manifest.name, v.number)
        if done:
            del v, done
            release_memory()

    def _poll(self) -> None:
        """Load what changed in the repository folder (``_load`` skips what already serves); a
        version that failed is retried only once its files change."""
        try:
            names = read_layout(self.root).models
        except UserError as e:
            warn.warning("layout", "repository %s: %s (serving what is loaded)", self.root, e)
            return
        for name, versions in names.items():
            if not versions:
                continue
            newest = max(versions)
            with self.lock:
                model = self.models.get(name)
                failed = model.failed.get(newest) if model is not None else None
            if failed is not None and failed[0] == fingerprint(versions[newest]):
                continue
            try:
                with self.loading:
                    self._load(name)
            except InferError as e:
                warn.warning(f"load:{name}", "%s", e.message)

    def _run(self) -> None:
        next_poll = time.monotonic() + self.poll_s
        while not self.stop.wait(REAP_S):
            self._reap()
            if self.control == "poll" and not self._draining and time.monotonic() >= next_poll:
                self._poll()
                next_poll = time.monotonic() + self.poll_s

    def close(self) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=10)
        with self.lock:
            versions = [v for m in self.models.values() for v in m.loaded]
        for v in versions:
            v.api.engine.close()
