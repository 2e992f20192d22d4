"""The README's dashboard screenshots (docs/ui-*.png): `make screenshots`.

Starts `agentplane serve` on a fresh SQLite file, fills it through the API as an operator
would (a tenant, agents, runs that complete, fail, pause for budget, get cancelled with a
reason), then photographs each page at 1280 px in Debian's Chromium."""

import asyncio
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet
from playwright.async_api import Page, async_playwright

from tests.support.browser import launch, open_page
from tests.support.server import live_server

DOCS = Path(__file__).parents[2] / "docs"
FIXTURE = str(Path(__file__).parent / "mcp_fixture_server.py")
LEAN = {"maxOutputTokens": 64}  # a small worst case to reserve, so small ceilings fit runs
CALC = {
    **LEAN,
    "script": [
        {"tool": "calculator", "arguments": {"expression": "17*23"}},
        {"tool": "calculator", "arguments": {"expression": "391+9"}},
        {"say": "17 * 23 is 391; plus 9 makes {last_tool_result}."},
    ],
}


class Api:
    def __init__(self, base: str) -> None:
        self.base = base

    async def __call__(self, token: str, query: str, **variables: Any) -> Any:
        async with httpx.AsyncClient(timeout=60) as client:
            response = await client.post(
                self.base + "/graphql",
                json={"query": query, "variables": variables},
                headers={"Authorization": f"Bearer {token}"},
            )
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(body["errors"])
        return body["data"]


async def seed(api: Api, admin: str) -> dict[str, str]:
    await api(
        admin,
        'mutation { createTenant(input: {name: "acme", displayName: "Acme Corp", '
        'email: "ops@acme.example", team: "platform"}) { tenant { id } } }',
    )
    await api(
        admin,
        'mutation { createTenant(input: {name: "globex", displayName: "Globex"}) '
        "{ tenant { id } } }",
    )
    mint = (
        'mutation($r: String!) { createAccessToken(input: {name: $r, tenant: "acme", '
        "role: $r}) { plainTextToken } }"
    )
    tokens = {
        role: (await api(admin, mint, r=role))["createAccessToken"]["plainTextToken"]
        for role in ("operator", "tenant_admin", "viewer")
    }
    op = tokens["operator"]
    create = (
        "mutation($n: String!, $m: String!, $c: JSON, $t: [String!]) { createAgent(input: "
        '{name: $n, model: $m, config: $c, tools: $t, systemPrompt: "Be brief."}) '
        "{ agent { id } } }"
    )
    agents = {
        name: (await api(op, create, n=name, m=model, c=config, t=tools))["createAgent"]["agent"][
            "id"
        ]
        for name, model, config, tools in [
            ("calc", "scripted/agent", CALC, ["calculator"]),
            ("echo", "scripted/echo", LEAN, None),
            ("summariser", "scripted/echo", LEAN, None),
            ("claude-triage", "anthropic/claude-sonnet-4-5", None, None),
        ]
    }
    await api(
        admin,
        'mutation { setBudget(input: {scope: TENANT, tenant: "acme", '
        "monthlyLimitUsd: 0.00028}) { budget { id } } }",
    )
    await api(
        admin,
        'mutation($a: ID!) { setBudget(input: {scope: AGENT, tenant: "acme", '
        "agentId: $a, monthlyLimitUsd: 0.000025}) { budget { id } } }",
        a=agents["summariser"],
    )
    submit = (
        "mutation($a: ID!, $q: String!) { submitTask(input: {agentId: $a, query: $q}) "
        "{ task { id } } }"
    )

    async def run(agent: str, query: str) -> str:
        return str((await api(op, submit, a=agents[agent], q=query))["submitTask"]["task"]["id"])

    async def settle(task_id: str) -> None:
        for _ in range(200):
            data = await api(op, "query($id: ID!) { task(id: $id) { isTerminal } }", id=task_id)
            if data["task"]["isTerminal"]:
                return
            await asyncio.sleep(0.1)

    calc = [await run("calc", "what is 17*23 + 9?")]
    await settle(calc[0])  # the run the pictures show completes before the budget runs low
    calc += [await run("calc", f"what is 17*23 + 9? (#{i})") for i in (1, 2)]
    for i in range(6):
        await run("echo", f"ping {i}: is the gateway healthy?")
    for i in range(4):
        try:
            await run("summariser", f"summarise incident INC-{1040 + i}")
        except RuntimeError:
            pass  # the agent's ceiling is spent: refused with BUDGET_EXCEEDED
    await run("claude-triage", "triage the overnight alerts")
    await asyncio.sleep(3)
    slow = await run("calc", "what is 17*23 + 9, for the record?")
    control = "mutation($i: TaskControlInput!) { cancelTask(input: $i) { task { id } } }"
    try:
        await api(op, control, i={"id": slow, "reason": "duplicate of an earlier request"})
    except RuntimeError:
        pass
    await asyncio.sleep(2)
    return {**tokens, "admin": admin, "task": calc[0], "globex": await seed_tools(api, admin)}


async def seed_tools(api: Api, admin: str) -> str:
    """In globex (acme's budget is spent on purpose): an HTTP tool that needs approval, the
    fixture MCP server, and calls held for approval. Returns globex's tenant admin token."""
    mint = (
        'mutation($r: String!) { createAccessToken(input: {name: $r, tenant: "globex", '
        "role: $r}) { plainTextToken } }"
    )
    tenant_admin, op = [
        (await api(admin, mint, r=role))["createAccessToken"]["plainTextToken"]
        for role in ("tenant_admin", "operator")
    ]
    await api(
        tenant_admin,
        "mutation($i: CreateHttpToolInput!) { createHttpTool(input: $i) { tool { id } } }",
        i={
            "name": "restart_service",
            "description": "Restart a service in one region.",
            "url": "https://ops.acme.example/api/services/{service}/restart",
            "inputSchema": {
                "type": "object",
                "properties": {"service": {"type": "string"}, "region": {"type": "string"}},
                "required": ["service"],
            },
            "secretHeaders": {"Authorization": "Bearer not-shown"},
            "requiresApproval": True,
            "risk": "high",
        },
    )
    await api(
        admin,
        "mutation($i: RegisterMcpServerInput!) { registerMcpServer(input: $i) "
        "{ mcpServer { id } } }",
        i={
            "name": "fixture",
            "transport": "STDIO",
            "command": sys.executable,
            "args": [FIXTURE],
            "tenant": "globex",
        },
    )
    create = (
        "mutation($n: String!, $c: JSON, $t: [String!]) { createAgent(input: {name: $n, "
        'model: "scripted/agent", config: $c, tools: $t}) { agent { id } } }'
    )
    calls = [
        ("oncall", "restart_service", {"service": "checkout", "region": "eu-west-1"}, {}),
        (
            "ledger",
            "calculator",
            {"expression": "1249.5*12"},
            {"calculator": {"risk": "medium", "expiresInS": 7200}},
        ),
    ]
    for name, tool, arguments, approvals in calls:
        config = {**LEAN, "script": [{"tool": tool, "arguments": arguments}, {"say": "done"}]}
        if approvals:
            config["approvals"] = {"tools": approvals}
        agent = (await api(op, create, n=name, c=config, t=[tool]))["createAgent"]["agent"]["id"]
        task = (
            await api(
                op,
                'mutation($a: ID!) { submitTask(input: {agentId: $a, query: "go"}) '
                "{ task { id } } }",
                a=agent,
            )
        )["submitTask"]["task"]["id"]
        for _ in range(200):
            data = await api(op, "query($id: ID!) { task(id: $id) { status } }", id=task)
            if data["task"]["status"] == "WAITING_FOR_APPROVAL":
                break
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError(f"{task} did not wait for approval: {data}")
    return tenant_admin


async def shoot(page: Page, url: str, name: str, ready: str = ".panel") -> None:
    await page.goto(url)
    await page.locator(ready).first.wait_for()
    await page.wait_for_load_state("networkidle")
    await asyncio.sleep(0.6)
    path = DOCS / f"ui-{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    print("wrote", path.relative_to(DOCS.parent))


async def main() -> None:
    DOCS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        admin = "agp_admin_" + secrets.token_urlsafe(24)
        env = {
            "AGENTPLANE_SCRIPTED_DELAY_MS": "120",
            "AGENTPLANE_SECRET_KEY": Fernet.generate_key().decode(),
        }
        with live_server(
            f"sqlite://{tmp}/ui.db", Path(tmp), admin_token=admin, env=env, ready_timeout_s=120
        ) as server:
            api = Api(server.base_url)
            tokens = await seed(api, admin)
            base, task = server.base_url + "/ui", tokens["task"]
            async with async_playwright() as playwright:
                browser = await launch(playwright)
                signin = await open_page(browser, server.base_url)
                await shoot(signin.page, f"{base}/", "signin", ".signin")
                admin_page = await open_page(browser, server.base_url, tokens["tenant_admin"])
                page = admin_page.page
                await shoot(page, f"{base}/", "fleet")
                await shoot(page, f"{base}/tasks/{task}?step=3", "run", "[data-testid=drawer]")
                await shoot(page, f"{base}/tasks/{task}?view=waterfall", "waterfall")
                await shoot(page, f"{base}/costs", "costs")
                await shoot(page, f"{base}/audit", "audit")
                agents = await api(
                    tokens["operator"], "{ agents(first: 5) { edges { node { id name } } } }"
                )
                calc = next(
                    e["node"]["id"]
                    for e in agents["agents"]["edges"]
                    if e["node"]["name"] == "calc"
                )
                await shoot(page, f"{base}/agents?focus={calc}", "agents")
                globex = await open_page(browser, server.base_url, tokens["globex"])
                await shoot(globex.page, f"{base}/approvals", "approvals", "[data-approval]")
                await shoot(globex.page, f"{base}/tools", "tools", "[data-testid=mcp-server]")
                platform = await open_page(browser, server.base_url, admin)
                await shoot(platform.page, f"{base}/tenants", "tenants")
                await page.evaluate("localStorage.setItem('agentplane.theme', 'dark')")
                await shoot(page, f"{base}/tasks/{task}?step=4", "run-dark", "[data-testid=drawer]")
                viewer = await open_page(browser, server.base_url, tokens["viewer"])
                await shoot(viewer.page, f"{base}/tasks/{task}", "run-viewer", "[data-seq]")
                for watched in (signin, admin_page, globex, platform, viewer):
                    assert not watched.errors, watched.errors
                    assert not watched.foreign, watched.foreign
                await browser.close()


if __name__ == "__main__":
    asyncio.run(main())
