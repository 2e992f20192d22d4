"""The dashboard's committed build (src/agentplane/static/ui) is exactly what its sources
(ui/) build: `npm ci` with the lockfile, then Vite into a temporary directory."""

import asyncio
import os
import shutil
from pathlib import Path

import agentplane

UI = Path(__file__).parents[1] / "ui"
COMMITTED = Path(agentplane.__file__).parent / "static" / "ui"


async def run(*command: str, env: dict[str, str] | None = None) -> str:
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=UI,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    text = output.decode(errors="replace")
    assert process.returncode == 0, f"{' '.join(command)} failed:\n{text}"
    return text


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


async def test_rebuilding_the_dashboard_from_source_gives_the_committed_files(
    tmp_path: Path,
) -> None:
    npm = shutil.which("npm")
    assert npm, "Node 20+ and npm are needed to check the dashboard build (make test uses them)"
    # given the locked dependencies (make test installs them; a bare pytest run does it here)
    stamp = UI / "node_modules" / ".installed"
    if not stamp.exists():
        await run(npm, "ci", "--quiet", "--no-audit", "--no-fund")
        stamp.touch()
    # when the sources are built into a temporary directory
    out = tmp_path / "ui"
    await run(npm, "run", "build", env={**os.environ, "UI_OUT_DIR": str(out)})
    # then every file is the committed one, byte for byte, and there is no other
    built, committed = files(out), files(COMMITTED)
    assert sorted(built) == sorted(committed), "rebuild the dashboard: make ui"
    changed = [name for name in built if built[name] != committed[name]]
    assert changed == [], f"stale committed build, run `make ui` and commit: {changed}"
    assert any(name.startswith("assets/index-") for name in built)
