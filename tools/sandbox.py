"""Student kernels in a bubblewrap sandbox: what a submission's code can reach while it is graded.

nbgrader starts each submission's kernel from a kernelspec; :func:`install_kernel` writes one
whose command is this file. Outside the sandbox (``launch``) it starts ``bwrap`` with the limits
of the spec; inside, ``supervise`` runs the kernel (``kernel``: ipykernel with an audit hook) and,
when it ends, kills whatever the kernel left running. The kernel sees the system, the Python
installation and the virtual environment, the ``helpers`` package, the data and the trained
models read-only, its own submission folder, its answers folder and a private ``/tmp`` writable,
and nothing else of the machine: not the course (its ``source/``, ``release/``, gradebook, other
students), not the instructor's home. No network but a loopback of its own (the kernel talks to
nbgrader over Unix sockets), its own PID, IPC and UTS namespaces, no capabilities; run by root,
it also runs as ``nobody``. Limits: CPU time, processes, file size, the size of ``/tmp``.

What the kernel tried (a path outside its sandbox, a network connection, a process left running,
a limit that killed it) goes, one JSON line per event, through a pipe to an audit log that the
sandbox cannot see: :func:`events` reads it. The hook only reports; the sandbox enforces, so a
student who silences the hook still reads, writes and connects nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

TOOL, PACKAGE = "bwrap", "bubblewrap"
KERNEL = "xai-sandbox"
NOBODY = 65534
INSIDE = "/xai-sandbox/sandbox.py"  # where this file is seen inside the sandbox
SYSTEM = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt")
SEEN = ("/proc", "/dev", "/sys", "/tmp")  # the sandbox's own
MAX_EVENTS, MAX_LOG = 200, 1 << 20
SIGNALS = {signal.SIGXCPU: "cpu", signal.SIGXFSZ: "file_size"}


class SandboxMissing(RuntimeError):
    pass


def require() -> str:
    """The bwrap executable, or a clear error naming the package to install."""
    found = shutil.which(TOOL)
    if found is None:
        raise SandboxMissing(
            f"autograde runs every student kernel in a sandbox and needs `{TOOL}`: install the "
            f"`{PACKAGE}` package (Debian/Ubuntu: apt-get install {PACKAGE}; Fedora: dnf install "
            f"{PACKAGE}), or pass --unsafe-no-sandbox on a trusted machine only")
    return found


def works() -> str:
    """Why bwrap cannot start a sandbox here ("" when it can)."""
    try:
        probe = [require(), "--ro-bind", "/", "/", "--unshare-pid", "--unshare-net",
                 *([] if os.geteuid() == 0 else ["--unshare-user"]), "true"]
        done = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    except (SandboxMissing, OSError, subprocess.TimeoutExpired) as err:
        return str(err)
    return "" if done.returncode == 0 else (
        f"`{TOOL}` is installed but cannot create namespaces here ({done.stderr.strip()}): "
        "allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1) or run "
        "autograde as root; --unsafe-no-sandbox on a trusted machine only")


def install_kernel(folder: Path, spec: dict) -> tuple[dict[str, str], list[str]]:
    """Write the sandboxed kernelspec and its spec under ``folder``; return the environment and
    the nbgrader options that make nbgrader use it (Unix sockets: the sandbox has no network)."""
    runtime, kernels = folder / "runtime", folder / "jupyter" / "kernels" / KERNEL
    runtime.mkdir(parents=True, exist_ok=True)
    kernels.mkdir(parents=True, exist_ok=True)
    spec = spec | {"writable": [*spec["writable"], str(runtime)], "runtime": str(runtime)}
    (folder / "spec.json").write_text(json.dumps(spec, indent=1))
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, str(Path(__file__).resolve()), "launch", str(folder / "spec.json"),
                 "{connection_file}"],
        "display_name": "Python 3 (sandbox)", "language": "python", "interrupt_mode": "message"}))
    env = {"JUPYTER_PATH": str(folder / "jupyter"), "JUPYTER_RUNTIME_DIR": str(runtime)}
    return env, [f"--Execute.kernel_name={KERNEL}", "--KernelManager.transport=ipc",
                 f"--KernelManager.ip={runtime / 'kernel'}"]


def spec_for(readable: list[Path], writable: list[Path], audit: Path, cpu_seconds: int,
             processes: int, file_mib: int, tmp_mib: int, hidden: list[Path] = (),
             quiet: list[Path] = ()) -> dict:
    """What one submission's kernel may see and use; ``hidden``: folders whose paths the audit
    reports even where they would fall in the sandbox's own /tmp (the course, say); ``quiet``:
    read-only folders whose writes it does not report (the cache the helpers try to save to)."""
    python = {sys.prefix, sys.base_prefix, os.path.realpath(sys.prefix)}
    return {"readable": sorted({*python, *map(str, readable)}),
            "writable": list(map(str, writable)),
            "audit": str(audit), "hidden": [str(p) for p in hidden],
            "quiet": [str(p) for p in quiet],
            "uid": NOBODY if os.geteuid() == 0 else None,
            "limits": {"cpu_seconds": cpu_seconds, "processes": processes,
                       "file_bytes": file_mib << 20, "tmp_bytes": tmp_mib << 20}}


def events(audit: Path) -> list[dict]:
    """The audit log's events (lines the kernel garbled are skipped)."""
    out = []
    for line in audit.read_text(errors="replace").splitlines() if audit.exists() else []:
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            if isinstance(event, dict) and isinstance(event.get("event"), str):
                out.append(event)
    return out


# --------------------------------------------------------------------------- outside


def bwrap_command(spec: dict, cwd: str) -> list[str]:
    command = [require(), "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-net",
               "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox"]
    if spec["uid"] is None:  # an unprivileged user: bwrap needs a user namespace
        command.append("--unshare-user")
    # first: what is bound below /tmp comes after
    command += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777",
                "--size", str(spec["limits"]["tmp_bytes"]), "--tmpfs", "/tmp"]
    for path in SYSTEM:
        if os.path.islink(path):
            command += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            command += ["--ro-bind", path, path]
    bound = [*spec["readable"], *spec["writable"]]
    for folder in sorted({str(a) for p in bound for a in Path(p).parents} - {"/", *SYSTEM, *SEEN}):
        command += ["--perms", "0755", "--dir", folder]  # else bwrap makes them 0700
    for path in spec["readable"]:
        command += ["--ro-bind-try", path, path]
    for path in spec["writable"]:
        command += ["--bind", path, path]
    command += ["--perms", "0755", "--dir", os.path.dirname(INSIDE),
                "--ro-bind", str(Path(__file__).resolve()), INSIDE, "--setenv", "HOME", "/tmp",
                "--setenv", "MPLCONFIGDIR", "/tmp/matplotlib",
                "--chdir", cwd]
    if spec["uid"] is not None:  # root: the kernel runs as nobody, without capabilities
        command += ["--", "setpriv", f"--reuid={spec['uid']}", f"--regid={spec['uid']}",
                    "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"]
    else:
        command += ["--cap-drop", "ALL", "--"]
    return command


def _limits(limits: dict, uid: int | None) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_seconds"],) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_bytes"],) * 2)
    if uid is not None:  # per user; root is never limited, so only for the sandbox's own user
        resource.setrlimit(resource.RLIMIT_NPROC, (limits["processes"],) * 2)


def launch(spec_path: str, connection_file: str, *extra: str) -> int:
    """The kernelspec's command: start the sandboxed kernel, copy its audit lines to the log."""
    cwd = os.getcwd()  # the submission's folder, where nbgrader starts its kernel
    spec = json.loads(Path(spec_path).read_text())
    spec["writable"].append(cwd)
    os.environ["XAI_SANDBOX_SPEC"] = json.dumps(spec)  # for the audit hook
    uid = spec["uid"]
    seen = Path(spec["runtime"]) / f"sandbox-{Path(connection_file).name}"  # where it sees it
    shutil.copy(connection_file, seen)
    connection_file = str(seen)
    if uid is not None:  # the kernel's user must read the connection file and write its folders
        for path in spec["writable"]:
            _chown_tree(Path(path), uid)
    read, write = os.pipe()
    command = [*bwrap_command(spec, cwd), sys.executable, INSIDE, "supervise", str(write),
               connection_file, *extra]
    proc = subprocess.Popen(command, pass_fds=(write,),
                            preexec_fn=lambda: _limits(spec["limits"], uid))
    os.close(write)
    signal.signal(signal.SIGTERM, lambda *_: _stop(proc, spec["audit"]))
    written = 0
    with open(spec["audit"], "ab") as log, os.fdopen(read, "rb") as pipe:
        for line in pipe:  # until every process of the sandbox has ended
            if written < MAX_LOG:
                log.write(line[:4000].rstrip(b"\n") + b"\n")
                log.flush()
                written += len(line)
    return proc.wait()


def _stop(proc: subprocess.Popen, audit: str) -> None:
    """SIGTERM (the kernel did not end when asked): report what the kernel started that still
    runs, as the supervisor would have, then end the sandbox."""
    import psutil

    with contextlib.suppress(psutil.Error), open(audit, "a") as log:
        for child in psutil.Process(proc.pid).children(recursive=True):
            command = " ".join(child.cmdline())
            if INSIDE not in command and child.name() not in (TOOL, "setpriv"):
                _emit(log, {"event": "left_running", "command": command[:300]})
    proc.kill()


def _chown_tree(root: Path, uid: int) -> None:
    for folder, dirs, files in os.walk(root):
        for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
            with contextlib.suppress(OSError):
                os.chown(name, uid, uid, follow_symlinks=False)


# --------------------------------------------------------------------------- inside


def supervise(fd: str, connection_file: str, *extra: str) -> int:
    """PID 2 of the sandbox: run the kernel; report and kill what it left running."""
    kernel = subprocess.Popen([sys.executable, INSIDE, "kernel", fd, connection_file, *extra],
                              pass_fds=(int(fd),))
    with contextlib.suppress(KeyboardInterrupt):
        code = kernel.wait()
    out = os.fdopen(int(fd), "w")
    if -code in SIGNALS:
        _emit(out, {"event": "limit", "what": SIGNALS[-code]})
    for pid in _others():
        _emit(out, {"event": "left_running", "command": _cmdline(pid)})
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return code if code >= 0 else 128 - code


def _others() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, os.getpid())]


def _cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace").strip()[:300]
    return "?"


def _emit(out, event: dict) -> None:
    with contextlib.suppress(OSError, ValueError):
        out.write(json.dumps(event, ensure_ascii=False) + "\n")
        out.flush()


class Auditor:
    """An audit hook: paths outside the sandbox's zones, writes outside its writable ones and
    network connections, each reported once with the notebook cell (execution count)."""

    def __init__(self, fd: int, spec: dict):
        self.out = os.fdopen(fd, "w")
        self.read = (*SYSTEM, *SEEN, *spec["readable"], *spec["writable"], INSIDE)
        self.write = (*spec["writable"], "/tmp", "/dev", "/proc/self")
        self.bound = (*spec["readable"], *spec["writable"])
        self.hidden = tuple(spec.get("hidden", ()))
        self.quiet = tuple(spec.get("quiet", ()))
        self.seen: set = set()
        self.busy = False

    def __call__(self, name: str, args: tuple) -> None:
        if self.busy or len(self.seen) >= MAX_EVENTS:
            return
        self.busy = True
        try:
            event = self._event(name, args)
            if event and (key := json.dumps(event, sort_keys=True)) not in self.seen:
                self.seen.add(key)
                _emit(self.out, event | {"cell": _execution_count()})
        except Exception:
            pass
        finally:
            self.busy = False

    def _event(self, name: str, args: tuple) -> dict | None:
        if name == "open" and isinstance(args[0], str | bytes):
            path, mode, flags = os.fsdecode(args[0]), args[1] or "r", args[2] or 0
            writing = any(c in str(mode) for c in "wax+") or flags & (
                os.O_WRONLY | os.O_RDWR | os.O_CREAT)
            return self._path(path, writing)
        if name in ("os.listdir", "os.scandir") and isinstance(args[0], str | bytes):
            return self._path(os.fsdecode(args[0]), False)
        if name in ("os.remove", "os.rename", "os.mkdir", "os.rmdir") and isinstance(
                args[0], str | bytes):
            return self._path(os.fsdecode(args[0]), True)
        if name in ("socket.connect", "socket.sendto") and isinstance(args[-1], tuple):
            return {"event": "network", "address": ":".join(map(str, args[-1][:2]))}
        return None

    def _path(self, path: str, writing: bool) -> dict | None:
        full = os.path.abspath(path)
        if writing and any(_under(full, q) for q in self.quiet):
            return None  # the course's own code tries to save a model there (read-only)
        zones = self.write if writing else self.read
        if not any(_under(full, z) for z in zones):
            return {"event": "write" if writing else "read", "path": full}
        if any(_under(full, h) for h in self.hidden) and not any(
                _under(full, b) for b in self.bound):  # e.g. a course kept below /tmp
            return {"event": "write" if writing else "read", "path": full}
        return None


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _execution_count() -> int | None:
    """The running cell's number (IPython counts the next one while a cell runs)."""
    ipython = sys.modules.get("IPython")
    count = getattr(ipython.get_ipython() if ipython else None, "execution_count", None)
    return count - 1 if isinstance(count, int) else None


def kernel(fd: str, connection_file: str, *extra: str) -> None:
    """The ipykernel of the submission, with the audit hook and the default action (death) for
    SIGXFSZ, so that a file past the size limit ends the kernel with a reason."""
    import runpy

    spec = json.loads(os.environ.pop("XAI_SANDBOX_SPEC"))
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    sys.addaudithook(Auditor(int(fd), spec))
    sys.path[:] = [p for p in sys.path if p != os.path.dirname(INSIDE)]
    sys.argv = ["ipykernel_launcher", "-f", connection_file, *extra]
    runpy.run_module("ipykernel_launcher", run_name="__main__", alter_sys=True)


def main(argv: list[str]) -> int:
    action, *args = argv
    if action == "launch":
        return launch(*args)
    if action == "supervise":
        return supervise(*args)
    if action == "kernel":
        kernel(*args)
        return 0
    raise SystemExit(f"unknown action {action!r}: launch, supervise or kernel")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
