"""`agentplane login`: the CLI side of the device grant, against a live server."""

import asyncio
import re
import sys
from pathlib import Path

import httpx

from agentplane.core.config import Settings
from tests.support.server import live_server


async def test_cli_login_prints_a_token_once_the_browser_approves(
    services: Settings, database_url: str, workdir: Path
) -> None:
    with live_server(database_url, workdir, "--no-worker") as server:
        async with httpx.AsyncClient(base_url=server.base_url) as browser:
            # given an owner signed in in a browser
            registered = await browser.post(
                "/api/v1/auth/register",
                json={"email": "me@example.com", "password": "a long passphrase"},
            )
            csrf = registered.json()["csrfToken"]
            # when the CLI starts a login
            cli = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "agentplane",
                "login",
                "--url",
                server.base_url,
                "--interval",
                "0.2",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                assert cli.stderr is not None
                prompt = (await cli.stderr.readline() + await cli.stderr.readline()).decode()
                code = re.search(r"code ([A-Z]{4}-[A-Z]{4})", prompt)
                assert code, prompt
                assert f"{server.base_url}/api/v1/auth/device/activate?userCode=" in prompt
                # and the user approves the code it shows
                approved = await browser.post(
                    "/api/v1/auth/device/activate",
                    json={"userCode": code.group(1)},
                    headers={"X-CSRF-Token": csrf},
                )
                assert approved.status_code == 200
                out, err = await asyncio.wait_for(cli.communicate(), 20)
            finally:
                if cli.returncode is None:
                    cli.kill()
                    await cli.wait()
            # then it prints a working token on stdout
            assert cli.returncode == 0, err
            token = out.decode().strip()
            assert token.startswith("agp_")
            viewer = await browser.post(
                "/graphql",
                json={"query": "{ viewer { kind role } }"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert viewer.json()["data"]["viewer"] == {"kind": "token", "role": "platform_admin"}
