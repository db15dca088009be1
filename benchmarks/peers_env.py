"""Separate virtual environments for the peer tools the benchmarks compare with (never Slicewatch deps).

Two environments, created on first use next to this file and ignored by git:

- ``.peers-venv``: Evidently (+ pandas, pyarrow); the same one ``benchmarks/stats.py`` uses.
- ``.peers-venv-alibi``: Alibi Detect. It pins ``numpy<2`` and ``numba<0.60``, which would downgrade
  the Evidently environment's numpy under a running benchmark, so it gets its own (and no pyarrow:
  current pyarrow needs numpy 2, so data goes to it as ``.npz``).

Peer code runs in a subprocess of that environment's interpreter and answers with one JSON line on
stdout (its last line). A failed install or run is printed and returns ``None``, so a benchmark can
carry on with the other peers.

Examples
--------
>>> ENVS["alibi"].packages
('alibi-detect',)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent


@dataclass(frozen=True)
class PeerEnv:
    name: str
    directory: Path
    packages: tuple[str, ...]
    probe: str
    """Python statements that succeed only when the environment is usable."""

    @property
    def python(self) -> Path:
        return self.directory / "bin" / "python"


ENVS = {
    "evidently": PeerEnv("evidently", HERE / ".peers-venv", ("evidently", "pandas<3", "pyarrow"),
                         "import evidently, pandas, pyarrow"),
    "alibi": PeerEnv("alibi", HERE / ".peers-venv-alibi", ("alibi-detect",), "import alibi_detect.cd, numba"),
}


def _usable(env: PeerEnv) -> bool:
    if not env.python.exists():
        return False
    return subprocess.run([str(env.python), "-c", env.probe], capture_output=True, timeout=600).returncode == 0


def _resolves(env: PeerEnv) -> bool:
    """``pip download --no-deps`` of the top-level packages with the environment's own pip: a cheap
    check that the index has them."""
    with tempfile.TemporaryDirectory() as d:
        out = subprocess.run([str(env.python), "-m", "pip", "download", "--no-deps", "-q", "-d", d, *env.packages],
                             capture_output=True, text=True, timeout=600)
    return out.returncode == 0


def ensure(name: str) -> Path | None:
    """The interpreter of peer environment ``name``, creating it on first use; ``None`` if unavailable."""
    env = ENVS[name]
    try:
        if _usable(env):
            return env.python
        print(f"creating {env.directory.name} with {' '.join(env.packages)} (first run only) ...", flush=True)
        if not env.python.exists():  # a plain venv (with pip: Slicewatch's own, made by uv, has none)
            subprocess.run([sys.executable, "-m", "venv", str(env.directory)], check=True, capture_output=True)
        if not _resolves(env):
            print(f"PEER UNAVAILABLE: {name}: pip cannot resolve {', '.join(env.packages)}; skipping it")
            return None
        subprocess.run([str(env.python), "-m", "pip", "install", "-q", *env.packages], check=True,
                       capture_output=True, timeout=3600)
    except (subprocess.SubprocessError, OSError) as e:
        print(f"PEER UNAVAILABLE: {name}: installing into {env.directory.name} failed ({type(e).__name__}); "
              "skipping it")
        return None
    if not _usable(env):
        print(f"PEER UNAVAILABLE: {name}: installed but `{env.probe}` fails; skipping it")
        return None
    return env.python


class PeerRun:
    """One peer script running in its environment (started at construction, so several run at once)."""

    def __init__(self, name: str, script: Path, args: list[str]):
        self.name = name
        self.proc: subprocess.Popen[str] | None = None
        python = ensure(name)
        if python is None:
            return
        self.proc = subprocess.Popen([str(python), str(script), *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)

    def result(self, timeout: float = 3600.0) -> dict | None:
        """The JSON answer, or ``None`` (printed) when the peer was unavailable or failed."""
        if self.proc is None:
            return None
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            print(f"PEER FAILED: {self.name}: no answer within {timeout:.0f} s")
            return None
        lines = [ln for ln in out.strip().splitlines() if ln.startswith("{")]
        if self.proc.returncode != 0 or not lines:
            tail = err.strip().splitlines()[-1:] or ["no output"]
            print(f"PEER FAILED: {self.name}: exit {self.proc.returncode}: {tail[0][:300]}")
            return None
        answer: dict = json.loads(lines[-1])
        return answer
