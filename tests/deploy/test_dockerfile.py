"""The Dockerfile: lint-clean, shaped for production, and its install steps really work.

No Docker engine runs here, so the builder stage is replayed instead: the files its COPY
instructions bring in are copied (through `.dockerignore`, as a build context would be) into
a scratch directory, and its RUN instructions run there with its ENV, only with the
virtualenv redirected to a temporary path.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
SECRET_WORDS = ("TOKEN", "SECRET", "API_KEY", "PASSWORD")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args_of(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for args in self.args_of("ENV"):
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                env[key] = value
        return env


def canonical(distribution: str) -> str:
    """PEP 503 name normalisation, so `discord.py` and `discord-py` compare equal."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


def logical_lines(text: str) -> list[str]:
    """Instructions with their backslash continuations joined and comments dropped."""
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    return lines


def parse_stages(text: str) -> list[Stage]:
    stages: list[Stage] = []
    for line in logical_lines(text):
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif stages:
            stages[-1].instructions.append((keyword, args.strip()))
    return stages


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    verdict = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern.lstrip("!").rstrip("/")
        if any(fnmatch.fnmatch(candidate, glob) for candidate in candidates):
            verdict = not negated
    return verdict


def context_files(source: str, patterns: list[str]) -> list[Path]:
    """Every file under `source` that a build context would contain."""
    base = ROOT / source
    files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
    return [p for p in files if not ignored(p.relative_to(ROOT).as_posix(), patterns)]


def replay_copy(args: str, workdir: Path, patterns: list[str]) -> None:
    """COPY from the build context: a directory's contents go into the destination."""
    *sources, destination = args.split()
    into_dir = destination.endswith("/") or len(sources) > 1
    for source in sources:
        origin = ROOT / source
        files = context_files(source, patterns)
        assert files, f"COPY {source}: nothing in the build context"
        for file in files:
            if origin.is_dir():
                target = workdir / destination / file.relative_to(origin)
            elif into_dir:
                target = workdir / destination / file.name
            else:
                target = workdir / destination
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, target)


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_stages(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def ignore_patterns() -> list[str]:
    return [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


def test_hadolint_is_clean() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run(
        [str(hadolint), "--no-color", "--format", "json", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert json.loads(result.stdout or "[]") == [], result.stdout
    assert result.returncode == 0


def test_multi_stage_runtime_is_slim_and_gets_only_the_venv(stages: list[Stage]) -> None:
    assert len(stages) == 2
    builder, runtime = stages
    assert builder.name == "builder"
    # Both stages start from the same slim interpreter, pinned through one ARG.
    assert builder.base == runtime.base == "${PYTHON_IMAGE}"
    assert _global_args() == ["PYTHON_IMAGE=python:3.11-slim-bookworm"]
    copies = runtime.args_of("COPY")
    assert copies == ["--from=builder /opt/venv /opt/venv"]


def _global_args() -> list[str]:
    """ARG lines before the first FROM (the only ones FROM can use)."""
    args: list[str] = []
    for line in logical_lines(DOCKERFILE.read_text()):
        if line.upper().startswith("FROM"):
            break
        if line.upper().startswith("ARG "):
            args.append(line[4:].strip())
    return args


def test_runtime_runs_parley_serve_as_non_root_with_a_healthcheck(stages: list[Stage]) -> None:
    runtime = stages[-1]
    user = runtime.args_of("USER")[-1]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0  # numeric, so runAsNonRoot can verify it
    assert json.loads(runtime.args_of("ENTRYPOINT")[-1]) == ["parley"]
    assert json.loads(runtime.args_of("CMD")[-1]) == ["serve"]
    healthcheck = runtime.args_of("HEALTHCHECK")[-1]
    assert "/healthz" in healthcheck and "urllib.request" in healthcheck
    assert "curl" not in healthcheck and "wget" not in healthcheck
    assert runtime.env()["PATH"].startswith("/opt/venv/bin:")


def test_no_secret_is_baked_in(stages: list[Stage]) -> None:
    names = [
        name
        for stage in stages
        for name in list(stage.env()) + [a.split("=")[0] for a in stage.args_of("ARG")]
    ] + [a.split("=")[0] for a in _global_args()]
    assert not [n for n in names if any(word in n.upper() for word in SECRET_WORDS)]
    for stage in stages:
        for source in (a for a in stage.args_of("COPY") if not a.startswith("--from")):
            assert ".env" not in source.split()


def test_build_context_keeps_secrets_and_local_state_out(ignore_patterns: list[str]) -> None:
    for path in (".env", ".venv/bin/python", ".git/config", "tests/conftest.py", "helm"):
        assert ignored(path, ignore_patterns), path
    assert not ignored("bot/settings.py", ignore_patterns)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_builder_stage_installs_a_working_parley(
    stages: list[Stage], ignore_patterns: list[str], tmp_path: Path
) -> None:
    builder = stages[0]
    workdir = tmp_path / "context"
    workdir.mkdir()
    for args in builder.args_of("COPY"):
        replay_copy(args, workdir, ignore_patterns)

    venv = tmp_path / "venv"
    shims = tmp_path / "shims"
    shims.mkdir()
    # The image's `python3`; creating a venv from inside a venv uses the base interpreter.
    (shims / "python3").symlink_to(sys.executable)
    env = {**os.environ, **builder.env(), "VIRTUAL_ENV": str(venv)}
    env["PATH"] = f"{shims}{os.pathsep}{os.environ['PATH']}"
    for command in builder.args_of("RUN"):
        step = subprocess.run(
            ["sh", "-c", command], cwd=workdir, env=env, capture_output=True, text=True
        )
        assert step.returncode == 0, f"RUN {command}\n{step.stdout}\n{step.stderr}"

    python = venv / "bin" / "python"
    assert not (venv / "bin" / "pip").exists()
    imports = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib, pkgutil, bot, adapters\n"
            "for pkg in (bot, adapters):\n"
            "    for mod in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
            "        if not mod.name.endswith('.__main__'):\n"
            "            importlib.import_module(mod.name)\n"
            "import importlib.metadata as md, json\n"
            "print(json.dumps({d.metadata['Name']: d.version for d in md.distributions()}))",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert imports.returncode == 0, imports.stderr
    installed = {
        canonical(name): version
        for name, version in json.loads(imports.stdout.splitlines()[-1]).items()
    }
    pins = {
        canonical(name): version
        for name, _, version in (
            line.partition("==")
            for line in (ROOT / "constraints.txt").read_text().splitlines()
            if "==" in line
        )
    }
    for name, version in installed.items():
        if name != "parley":
            assert pins.get(name) == version, f"{name} {version} is not the locked version"
    assert {"slack-bolt", "discord-py", "redis"} <= installed.keys()

    cli = subprocess.run(
        [str(venv / "bin" / "parley"), "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": os.environ["PATH"]},
    )
    assert cli.returncode == 0, cli.stderr
    assert "serve" in cli.stdout
