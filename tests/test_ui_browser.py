"""The operator dashboard (/ui) in Debian's Chromium against a real `agentplane serve`.

The server runs without a worker, so a task's trace grows only by what the test writes
through the API (submit, pause, resume, cancel each append one status step): the page
must show exactly those steps, once each, in seq order."""

import asyncio
import secrets
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from cryptography.fernet import Fernet
from playwright.async_api import Browser, Page, async_playwright

from tests.support.browser import Watched, launch, open_page
from tests.support.server import LiveServer, free_port, live_server, live_worker

pytestmark = pytest.mark.asyncio(loop_scope="module")

# The browser's own report of a refused websocket while the server is down (not our code).
REFUSED = "net::ERR_CONNECTION_REFUSED"
READY_S = 90  # a server start takes seconds, more on a loaded machine
# Secret headers (the tools page) are encrypted under this key in the server processes.
ENV = {"AGENTPLANE_SECRET_KEY": Fernet.generate_key().decode()}


@dataclass
class Stage:
    """The server (restartable on its port), a tenant with an agent, and tokens."""

    stack: ExitStack
    database_url: str
    workdir: Path
    port: int
    admin_token: str
    server: LiveServer
    operator: str = ""
    viewer: str = ""
    agent_id: str = ""
    tenant: str = ""

    @property
    def base(self) -> str:
        return self.server.base_url

    def start(self, port: int | None = None) -> LiveServer:
        return self.stack.enter_context(
            live_server(
                self.database_url,
                self.workdir,
                "--no-worker",
                admin_token=self.admin_token,
                env=ENV,
                port=port or self.port,
                ready_timeout_s=READY_S,
            )
        )

    async def gql(self, token: str, query: str, base: str | None = None, **variables: Any) -> Any:
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.post(
                (base or self.base) + "/graphql",
                json={"query": query, "variables": variables},
                headers={"Authorization": f"Bearer {token}"},
            )
        body = response.json()
        assert not body.get("errors"), body["errors"]
        return body["data"]

    async def submit(self) -> str:
        data = await self.gql(
            self.operator,
            'mutation($a: ID!) { submitTask(input: {agentId: $a, query: "hello"}) '
            "{ task { id } } }",
            a=self.agent_id,
        )
        return str(data["submitTask"]["task"]["id"])

    async def control(self, verb: str, task_id: str, base: str | None = None) -> str:
        data = await self.gql(
            self.operator,
            f"mutation($i: TaskControlInput!) {{ {verb}Task(input: $i) {{ task {{ status }} }} }}",
            base,
            i={"id": task_id, "reason": f"test {verb}"},
        )
        return str(data[f"{verb}Task"]["task"]["status"])


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[Stage]:
    with ExitStack() as stack:
        port = free_port()
        admin = "agp_admin_" + secrets.token_urlsafe(24)
        workdir = tmp_path_factory.mktemp("ui")
        first = stack.enter_context(
            live_server(
                database_url,
                workdir,
                "--no-worker",
                admin_token=admin,
                env=ENV,
                port=port,
                ready_timeout_s=READY_S,
            )
        )
        yield Stage(stack, database_url, workdir, port, admin, first)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def staged(stage: Stage) -> Stage:
    stage.tenant = "ui-" + secrets.token_hex(4)
    await stage.gql(
        stage.admin_token,
        "mutation($n: String!) { createTenant(input: {name: $n}) { tenant { id } } }",
        n=stage.tenant,
    )
    mint = (
        "mutation($n: String!, $r: String!) { createAccessToken(input: "
        "{name: $r, tenant: $n, role: $r}) { plainTextToken } }"
    )
    for role in ("operator", "viewer"):
        data = await stage.gql(stage.admin_token, mint, n=stage.tenant, r=role)
        setattr(stage, role, data["createAccessToken"]["plainTextToken"])
    data = await stage.gql(
        stage.operator,
        'mutation { createAgent(input: {name: "echo", model: "scripted/echo"}) { agent { id } } }',
    )
    stage.agent_id = data["createAgent"]["agent"]["id"]
    return stage


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await launch(playwright)
        yield chromium
        await chromium.close()


@pytest_asyncio.fixture(loop_scope="module")
async def watched(browser: Browser, staged: Stage) -> AsyncIterator[Watched]:
    """A page signed in as the operator; afterwards: no console error, no foreign request."""
    w = await open_page(browser, staged.base, staged.operator)
    yield w
    await w.context.close()
    assert w.foreign == []
    assert [e for e in w.errors if REFUSED not in e] == []


async def seqs(page: Page) -> list[int]:
    values = await page.locator("[data-testid=steps] tr[data-seq]").evaluate_all(
        "rows => rows.map(r => Number(r.dataset.seq))"
    )
    return [int(v) for v in values]


async def in_sync(page: Page, seq: int) -> None:
    await page.locator("[data-testid=sync]", has_text=f"in sync @ seq {seq}").wait_for(
        timeout=10_000
    )


async def test_a_step_written_through_the_api_appears_within_a_second_exactly_once(
    watched: Watched, staged: Stage
) -> None:
    # given the run view of a queued task, in sync after its first step
    page = watched.page
    task_id = await staged.submit()
    await page.goto(f"{staged.base}/ui/tasks/{task_id}")
    await in_sync(page, 1)
    assert await seqs(page) == [1]

    # when a step is written through the API (pausing the task appends seq 2)
    started = time.monotonic()
    assert await staged.control("pause", task_id) == "PAUSED"
    await page.locator("[data-testid=steps] tr[data-seq='2']").wait_for(timeout=1_000)
    elapsed = time.monotonic() - started

    # then it is on the page within a second, once, after seq 1, and the status follows
    assert elapsed < 1.0
    assert await seqs(page) == [1, 2]
    await in_sync(page, 2)
    assert await page.inner_text("[data-testid=task-status]") == "paused"
    assert "test pause" in await page.inner_text("tr[data-seq='2']")


async def test_the_run_view_survives_a_server_restart_without_gap_or_duplicate(
    watched: Watched, staged: Stage
) -> None:
    # given the run view of a queued task, in sync at seq 1
    page = watched.page
    task_id = await staged.submit()
    await page.goto(f"{staged.base}/ui/tasks/{task_id}")
    await in_sync(page, 1)

    # when the server stops, steps are written elsewhere meanwhile (another process on the
    # same database), and the server starts again on the same port
    staged.server.process.terminate()
    staged.server.process.wait(10)
    await page.locator("[data-testid=sync]", has_text="reconnecting").wait_for(timeout=10_000)
    with live_server(
        staged.database_url,
        staged.workdir,
        "--no-worker",
        admin_token=staged.admin_token,
        ready_timeout_s=READY_S,
    ) as other:
        assert await staged.control("pause", task_id, other.base_url) == "PAUSED"
        assert await staged.control("resume", task_id, other.base_url) == "QUEUED"
    staged.server = staged.start()

    # then the page resumes after seq 1 and shows 2 and 3, and then what comes live
    await in_sync(page, 3)
    assert await staged.control("cancel", task_id) == "CANCELLED"
    await page.locator("[data-testid=sync]", has_text="complete @ seq 4").wait_for(timeout=5_000)
    assert await seqs(page) == [1, 2, 3, 4]
    # and all the browser reported was the refused connection while the server was down
    assert all(REFUSED in e or "WebSocket" in e for e in watched.errors), watched.errors
    watched.errors.clear()


async def test_a_cancel_from_the_ui_writes_an_audit_record_with_its_reason(
    watched: Watched, staged: Stage
) -> None:
    # given the run view of a queued task
    page = watched.page
    task_id = await staged.submit()
    await page.goto(f"{staged.base}/ui/tasks/{task_id}")
    await in_sync(page, 1)

    # when the operator cancels it from the UI, giving a reason
    await page.get_by_role("button", name="Cancel", exact=True).first.click()
    dialog = page.get_by_role("dialog")
    await dialog.locator("textarea[name=reason]").fill("runaway loop in the prompt")
    await dialog.get_by_role("button", name="Cancel", exact=True).click()

    # then the task is cancelled, the trace says why, and the audit log has the reason
    await page.locator("[data-testid=sync]", has_text="complete @ seq 2").wait_for(timeout=5_000)
    assert "runaway loop in the prompt" in await page.inner_text("tr[data-seq='2']")
    data = await staged.gql(
        staged.admin_token,
        'query { auditEvents(first: 20, action: "task.cancel") '
        "{ edges { node { resource outcome details actorKind } } } }",
    )
    records = [e["node"] for e in data["auditEvents"]["edges"] if e["node"]["resource"] == task_id]
    assert records == [
        {
            "resource": task_id,
            "outcome": "success",
            "details": {"reason": "runaway loop in the prompt"},
            "actorKind": "token",
        }
    ]
    # and the audit page shows it to those who may read the audit log
    auditor = await open_page(watched.context.browser, staged.base, staged.admin_token)  # type: ignore[arg-type]
    await auditor.page.goto(f"{staged.base}/ui/audit?action=task.cancel")
    row = auditor.page.locator("[data-testid=audit] tr", has_text=task_id)
    await row.locator("[data-testid=reason]").wait_for()
    assert "runaway loop in the prompt" in await row.inner_text()
    await auditor.context.close()
    assert auditor.errors == [] and auditor.foreign == []


async def test_an_operator_approves_a_tool_call_from_the_run_view(
    watched: Watched, staged: Stage
) -> None:
    # given an agent whose calculator calls need approval, a worker (this file's server has
    # none), and a task of it waiting for approval
    page = watched.page
    config = {
        "script": [
            {"tool": "calculator", "arguments": {"expression": "6*7"}},
            {"say": "answer: {last_tool_result}"},
        ],
        "approvals": {"tools": {"calculator": {"risk": "high"}}},
    }
    data = await staged.gql(
        staged.operator,
        """mutation($c: JSON) { createAgent(input: {name: "calc", model: "scripted/agent",
        tools: ["calculator"], config: $c}) { agent { id } } }""",
        c=config,
    )
    agent_id = data["createAgent"]["agent"]["id"]
    task_query = "query($id: ID!) { task(id: $id) { status output pendingApproval { id } } }"
    with live_worker(staged.database_url, staged.workdir):
        data = await staged.gql(
            staged.operator,
            'mutation($a: ID!) { submitTask(input: {agentId: $a, query: "6*7?"}) { task { id } } }',
            a=agent_id,
        )
        task_id = data["submitTask"]["task"]["id"]
        deadline = time.monotonic() + READY_S  # the worker process starts first
        while (task := (await staged.gql(staged.operator, task_query, id=task_id))["task"])[
            "status"
        ] != "WAITING_FOR_APPROVAL":
            assert time.monotonic() < deadline, task
            await asyncio.sleep(0.2)
        request_id = task["pendingApproval"]["id"]

        # when the operator opens its run view, sees the request and approves it with a reason
        await page.goto(f"{staged.base}/ui/tasks/{task_id}")
        request = page.locator("[data-testid=approval]")
        await request.wait_for()
        shown = await request.inner_text()
        assert "calculator" in shown and "high" in shown and "6*7" in shown
        assert await page.inner_text("[data-testid=task-status]") == "waiting_for_approval"
        await page.get_by_role("button", name="Approve", exact=True).click()
        dialog = page.get_by_role("dialog")
        await dialog.locator("textarea[name=reason]").fill("checked the expression")
        await dialog.get_by_role("button", name="Approve", exact=True).click()

        # then the worker runs the call and the task completes with the tool's answer (the
        # worker is another process: on SQLite the page learns of its steps by polling)
        status = page.locator("[data-testid=task-status]", has_text="completed")
        await status.wait_for(timeout=30_000)
        # (the status comes with the step; the output with the task's reload 300 ms later)
        facts = page.locator("section[aria-label=Task] dl.facts", has_text="answer: 42")
        await facts.wait_for(timeout=10_000)
    data = await staged.gql(staged.operator, task_query, id=task_id)
    assert data["task"]["status"] == "COMPLETED" and data["task"]["output"] == "answer: 42"
    # and the decision is audited with its reason
    data = await staged.gql(
        staged.admin_token,
        'query { auditEvents(first: 20, action: "approval.approve") '
        "{ edges { node { resource outcome details } } } }",
    )
    records = [
        e["node"] for e in data["auditEvents"]["edges"] if e["node"]["resource"] == request_id
    ]
    assert records == [
        {
            "resource": request_id,
            "outcome": "success",
            "details": {
                "tool": "calculator",
                "decision": "approved",
                "reason": "checked the expression",
            },
        }
    ]


async def test_a_viewer_sees_no_action_buttons_and_a_forged_action_is_refused(
    browser: Browser, staged: Stage
) -> None:
    # given a viewer on the fleet board (filtered in the URL) and on a queued task's run view
    task_id = await staged.submit()
    w = await open_page(browser, staged.base, staged.viewer)
    page = w.page
    await page.goto(f"{staged.base}/ui/?status=QUEUED")
    await page.locator(f"tr[data-task='{task_id}']").wait_for()
    assert await page.locator("select[name=status]").input_value() == "QUEUED"
    statuses = await page.locator("[data-testid=tasks] .status").all_inner_texts()
    assert statuses and set(statuses) == {"queued"}
    assert await page.locator("[data-testid=task-actions]").count() == 0
    await page.goto(f"{staged.base}/ui/tasks/{task_id}")
    await in_sync(page, 1)
    # then no action button is shown
    assert await page.locator("[data-testid=task-actions]").count() == 0
    for name in ("Cancel", "Pause", "Resume", "Retry"):
        assert await page.get_by_role("button", name=name, exact=True).count() == 0

    # when the viewer forges the action with a direct GraphQL call carrying its token
    answer = await page.evaluate(
        """async ([token, id]) => {
          const r = await fetch('/graphql', {method: 'POST', headers: {
            'Content-Type': 'application/json', Authorization: 'Bearer ' + token},
            body: JSON.stringify({variables: {i: {id, reason: 'forged'}}, query:
              'mutation($i: TaskControlInput!) { cancelTask(input: $i) { task { status } } }'})});
          return r.json();
        }""",
        [staged.viewer, task_id],
    )
    # then the server refuses it and the task is untouched
    assert [e["extensions"]["code"] for e in answer["errors"]] == ["FORBIDDEN"]
    data = await staged.gql(
        staged.operator, "query($id: ID!) { task(id: $id) { status } }", id=task_id
    )
    assert data["task"]["status"] == "QUEUED"
    await w.context.close()
    assert w.errors == [] and w.foreign == []


async def test_sign_in_with_a_local_account_then_every_page_fits_1280_px(
    browser: Browser, staged: Stage
) -> None:
    # given a local account holding the operator role in the tenant
    email = f"{staged.tenant}@example.com"
    await staged.gql(
        staged.admin_token,
        "mutation($e: String!, $t: String!) { createUser(input: {email: $e, "
        'password: "a long passphrase", role: "operator", tenant: $t}) { user { id } } }',
        e=email,
        t=staged.tenant,
    )
    task_id = await staged.submit()
    w = await open_page(browser, staged.base)
    page = w.page
    # when they sign in with email and password
    await page.goto(f"{staged.base}/ui/")
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", "a long passphrase")
    await page.get_by_role("button", name="Sign in", exact=True).click()
    # then the dashboard knows them, and streams over a token it minted (not the cookie)
    await page.locator("[data-testid=who]", has_text=f"operator · {staged.tenant}").wait_for()
    stored = await page.evaluate("localStorage.getItem('agentplane.token')")
    assert stored.startswith("agp_")
    # and no page overflows 1280 px, in light or dark mode
    for path in (
        "/",
        f"/tasks/{task_id}",
        "/approvals",
        "/costs",
        "/audit",
        "/agents",
        "/tools",
        "/tenants",
    ):
        await page.goto(f"{staged.base}/ui{path}")
        await page.locator(".panel").first.wait_for()
        await page.wait_for_load_state("networkidle")
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 1280, (path, width)
    await page.get_by_role("button", name="Toggle dark mode").click()
    assert await page.evaluate("document.documentElement.dataset.theme") in ("dark", "light")
    await w.context.close()
    assert w.errors == [] and w.foreign == []


async def test_keyboard_navigation_and_deep_links_in_the_run_view(
    watched: Watched, staged: Stage
) -> None:
    # given a task with three steps, opened on a deep link to step 2
    page = watched.page
    task_id = await staged.submit()
    await staged.control("pause", task_id)
    await staged.control("resume", task_id)
    await page.goto(f"{staged.base}/ui/tasks/{task_id}?step=2")
    await in_sync(page, 3)
    # then step 2 is selected and its drawer is open
    assert await page.inner_text("[data-testid=drawer] h2") == "Step 2 · status change"
    # when the operator presses j, then k twice, then w, then Escape
    await page.keyboard.press("j")
    assert await page.inner_text("[data-testid=drawer] h2") == "Step 3 · status change"
    assert page.url.endswith(f"/ui/tasks/{task_id}?step=3")
    await page.keyboard.press("k")
    await page.keyboard.press("k")
    assert "step=1" in page.url
    await page.keyboard.press("w")
    await page.locator("[data-testid=waterfall]").wait_for()
    await page.keyboard.press("Escape")
    # then the drawer closes and the waterfall stays
    await page.locator("[data-testid=drawer]").wait_for(state="detached")
    assert "view=waterfall" in page.url and "step=" not in page.url
    # and the trace panel's "Copy as GraphQL" is the subscription behind it
    trace = page.locator("section.panel", has=page.locator("[data-testid=waterfall]"))
    await trace.get_by_role("button", name="Copy as GraphQL").click()
    text = await page.get_by_role("dialog").locator("textarea").input_value()
    assert "subscription RunEvents($taskId: ID!, $afterSeq: Int)" in text
    assert f'"taskId": "{task_id}"' in text and '"afterSeq": 0' in text


async def test_graphiql_loads_from_this_server_only(browser: Browser, staged: Stage) -> None:
    # when GraphiQL opens in the browser
    w = await open_page(browser, staged.base)
    await w.page.goto(f"{staged.base}/graphql")
    # then it renders, and nothing was fetched from anywhere else (no CDN)
    await w.page.locator(".graphiql-container").wait_for(timeout=15_000)
    assert w.foreign == []
    assert w.errors == []
    await w.context.close()


async def test_ui_paths_caching_and_fallback(staged: Stage) -> None:
    async with httpx.AsyncClient(base_url=staged.base) as client:
        index = await client.get("/ui/tasks/tsk_anything")
        asset = next(
            part.split('"')[0]
            for part in index.text.split('src="')[1:]
            if part.startswith("/ui/assets/")
        )
        hashed = await client.get(asset)
        missing = await client.get("/ui/assets/nope-123.js")
        root = await client.get("/")
    # an extensionless path is the app, revalidated on every load
    assert index.status_code == 200 and 'id="app"' in index.text
    assert index.headers["cache-control"] == "no-cache"
    assert "default-src 'self'" in index.headers["content-security-policy"]
    # a hashed asset is cached for a year; a missing file stays a 404
    assert hashed.status_code == 200
    assert hashed.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert missing.status_code == 404
    assert root.status_code == 307 and root.headers["location"] == "/ui/"
    await asyncio.sleep(0)


# The inbox and tools pages. These tests start a server that runs a worker in its own
# process, so its broker hears the worker open and decide requests (on SQLite too; across
# processes that takes Redis). Being last in the module, that worker also drains the tasks
# the tests above left queued, which none of them looks at again.
CALC = {
    "script": [
        {"tool": "calculator", "arguments": {"expression": "6*7"}},
        {"say": "answer: {last_tool_result}"},
    ],
    "approvals": {"tools": {"calculator": {"risk": "high", "expiresInS": 3600}}},
}
WAITING = "query($id: ID!) { task(id: $id) { status output pendingApproval { id } } }"
FIXTURE = str(Path(__file__).resolve().parent / "support/mcp_fixture_server.py")


async def gated_agent(staged: Stage, name: str) -> str:
    data = await staged.gql(
        staged.operator,
        """mutation($n: String!, $c: JSON) { createAgent(input: {name: $n,
        model: "scripted/agent", tools: ["calculator"], config: $c}) { agent { id } } }""",
        n=name,
        c=CALC,
    )
    return str(data["createAgent"]["agent"]["id"])


async def submit_to(staged: Stage, base: str, agent_id: str) -> str:
    data = await staged.gql(
        staged.operator,
        'mutation($a: ID!) { submitTask(input: {agentId: $a, query: "6*7?"}) { task { id } } }',
        base,
        a=agent_id,
    )
    return str(data["submitTask"]["task"]["id"])


async def until(staged: Stage, base: str, task_id: str, status: str) -> dict[str, Any]:
    """The task once it has `status` (polled every 50 ms)."""
    deadline = time.monotonic() + READY_S
    while (task := (await staged.gql(staged.operator, WAITING, base, id=task_id))["task"])[
        "status"
    ] != status:
        assert time.monotonic() < deadline, task
        await asyncio.sleep(0.05)
    return dict(task)


async def live(page: Page) -> None:
    """Wait until the page's subscription is open (and registered by the server)."""
    await page.locator("[data-testid=link]", has_text="connected").wait_for(timeout=10_000)
    await asyncio.sleep(0.3)


def serve_with_worker(staged: Stage) -> Any:
    return live_server(
        staged.database_url,
        staged.workdir,
        admin_token=staged.admin_token,
        env=ENV,
        ready_timeout_s=READY_S,
    )


async def test_the_inbox_shows_a_held_call_at_once_and_a_decision_there_frees_the_run(
    browser: Browser, staged: Stage
) -> None:
    agent_id = await gated_agent(staged, "calc-inbox")
    with serve_with_worker(staged) as served:
        base = served.base_url
        # given an operator on the approvals inbox, its live subscription open
        w = await open_page(browser, base, staged.operator)
        page = w.page
        await page.goto(f"{base}/ui/approvals")
        await page.get_by_text("Nothing waits for a decision.").wait_for()
        await live(page)

        # when a task of a gated agent parks on its calculator call
        task_id = await submit_to(staged, base, agent_id)
        request_id = (await until(staged, base, task_id, "WAITING_FOR_APPROVAL"))[
            "pendingApproval"
        ]["id"]
        parked = time.monotonic()
        row = page.locator(f"tr[data-approval='{request_id}']")
        await row.wait_for(timeout=1_000)
        # then the request is in the inbox within a second, with its tool, risk, call, task
        assert time.monotonic() - parked < 1.0
        shown = await row.inner_text()
        assert "calculator" in shown and "high" in shown and "6*7" in shown and task_id in shown
        assert "in 59 min" in shown or "in 1 h" in shown  # expiresInS 3600
        assert await row.locator(f"a[href='/ui/tasks/{task_id}']").count() == 1

        # when the operator approves it from the inbox, giving no reason (optional there)
        await row.get_by_role("button", name="Approve", exact=True).click()
        dialog = page.get_by_role("dialog")
        await dialog.get_by_role("button", name="Approve", exact=True).click()
        # then the row leaves, and the run completes with the tool's answer
        await row.wait_for(state="detached", timeout=5_000)
        done = await until(staged, base, task_id, "COMPLETED")
        assert done["output"] == "answer: 42"

        # when a second call parks and the operator rejects it: a reason is asked for first
        other = await submit_to(staged, base, agent_id)
        other_id = (await until(staged, base, other, "WAITING_FOR_APPROVAL"))["pendingApproval"][
            "id"
        ]
        row = page.locator(f"tr[data-approval='{other_id}']")
        await row.get_by_role("button", name="Reject", exact=True).click()
        await dialog.get_by_role("button", name="Reject", exact=True).click()
        await dialog.get_by_role("alert").wait_for()
        assert "reason" in await dialog.get_by_role("alert").inner_text()
        await dialog.locator("textarea[name=reason]").fill("not today")
        await dialog.get_by_role("button", name="Reject", exact=True).click()
        await row.wait_for(state="detached", timeout=5_000)
        # then the model hears the refusal and the run completes
        refused = await until(staged, base, other, "COMPLETED")
        assert "rejected" in refused["output"] and "not today" in refused["output"]

        # and the decided filter shows both, with their decisions and reasons
        await page.select_option("select[name=status]", label="any")
        assert page.url.endswith("/ui/approvals?status=ALL")
        await page.locator(f"tr[data-approval='{request_id}']", has_text="approved").wait_for()
        rejected = page.locator(f"tr[data-approval='{other_id}']", has_text="rejected")
        assert "not today" in await rejected.inner_text()
        await page.select_option("select[name=status]", "REJECTED")
        # (the list is emptied, then read again for the new filter)
        await page.locator(f"tr[data-approval='{request_id}']").wait_for(state="detached")
        await rejected.wait_for()
        statuses = await page.locator("[data-testid=approvals] .outcome").all_inner_texts()
        assert statuses and set(statuses) == {"rejected"}
        assert await rejected.count() == 1
        assert await page.locator(f"tr[data-approval='{request_id}']").count() == 0
        await w.context.close()
    assert w.errors == [] and w.foreign == []


async def test_a_viewer_sees_the_inbox_without_buttons_and_a_forged_decision_is_refused(
    browser: Browser, staged: Stage
) -> None:
    agent_id = await gated_agent(staged, "calc-viewer")
    with serve_with_worker(staged) as served:
        base = served.base_url
        # given a call waiting for approval
        task_id = await submit_to(staged, base, agent_id)
        request_id = (await until(staged, base, task_id, "WAITING_FOR_APPROVAL"))[
            "pendingApproval"
        ]["id"]
        # when a viewer opens the inbox
        w = await open_page(browser, base, staged.viewer)
        page = w.page
        await page.goto(f"{base}/ui/approvals")
        row = page.locator(f"tr[data-approval='{request_id}']")
        await row.wait_for()
        # then the request is shown, with no button to decide it
        assert "calculator" in await row.inner_text()
        assert await page.locator("[data-testid=approval-actions]").count() == 0
        for name in ("Approve", "Reject"):
            assert await page.get_by_role("button", name=name, exact=True).count() == 0
        # and a decision forged with the viewer's token is refused, the call still waits
        answer = await page.evaluate(
            """async ([token, id]) => {
              const r = await fetch('/graphql', {method: 'POST', headers: {
                'Content-Type': 'application/json', Authorization: 'Bearer ' + token},
                body: JSON.stringify({variables: {i: {id, decision: 'APPROVE'}}, query:
                  'mutation($i: DecideApprovalInput!) { decideApproval(input: $i) '
                  + '{ approvalRequest { status } } }'})});
              return r.json();
            }""",
            [staged.viewer, request_id],
        )
        assert [e["extensions"]["code"] for e in answer["errors"]] == ["FORBIDDEN"]
        assert (await until(staged, base, task_id, "WAITING_FOR_APPROVAL"))["pendingApproval"][
            "id"
        ] == request_id
        await w.context.close()
        await staged.control("cancel", task_id, base)
    assert w.errors == [] and w.foreign == []


async def test_the_tools_page_lists_http_tools_and_mcp_servers_with_their_status(
    browser: Browser, staged: Stage
) -> None:
    # given an HTTP tool with a secret header and the stdio fixture MCP server (registered by
    # a platform token: a stdio command runs on the workers' hosts)
    secret = "s3cret-" + secrets.token_hex(8)
    await staged.gql(
        staged.admin_token,
        """mutation($i: CreateHttpToolInput!) { createHttpTool(input: $i) { tool { id } } }""",
        i={
            "name": "weather",
            "url": "http://127.0.0.1:9/weather/{city}?units=metric",
            "method": "GET",
            "secretHeaders": {"X-Api-Key": secret},
            "requiresApproval": True,
            "risk": "medium",
            "tenant": staged.tenant,
        },
    )
    data = await staged.gql(
        staged.admin_token,
        """mutation($i: RegisterMcpServerInput!) { registerMcpServer(input: $i)
        { mcpServer { id status protocolVersion refreshedAt } } }""",
        i={
            "name": "fixture",
            "transport": "STDIO",
            "command": sys.executable,
            "args": [FIXTURE],
            "tenant": staged.tenant,
        },
    )
    server = data["registerMcpServer"]["mcpServer"]
    assert server["status"] == "READY", server

    # when an operator (tool:read, not tool:write) opens the tools page
    w = await open_page(browser, staged.base, staged.operator)
    page = w.page
    await page.goto(f"{staged.base}/ui/tools")
    http = page.locator("[data-testid=http-tools] tr[data-tool=weather]")
    await http.wait_for()
    # then the HTTP tool shows its origin (not its path or query), method, approval, risk and
    # its secret header's name, never the value
    cells = await http.locator("td").all_inner_texts()
    assert cells[1:] == ["GET", "http://127.0.0.1:9", "yes", "required", "medium", "X-Api-Key"]
    assert secret not in await page.content()
    # and the MCP server its transport, status, protocol, and tools with their approval
    card = page.locator(f"[data-testid=mcp-server][data-id='{server['id']}']")
    assert await card.locator("[data-testid=mcp-status]").inner_text() == "ready"
    facts = await card.locator("dl.facts").inner_text()
    assert "stdio" in facts and server["protocolVersion"] in facts
    assert "agentplane-fixture" in facts
    destructive = card.locator("tr[data-tool=fixture__delete_everything]")
    assert "required" in await destructive.inner_text()
    assert await card.locator("tr[data-tool=fixture__add]").count() == 1
    # and the built-ins, with no Refresh button for this role
    assert await page.locator("[data-testid=builtin-tools] tr", has_text="calculator").count()
    assert await page.get_by_role("button", name="Refresh").count() == 0
    await w.context.close()
    assert w.errors == [] and w.foreign == []

    # when a platform admin (tool:write) presses Refresh on the server
    admin = await open_page(browser, staged.base, staged.admin_token)
    await admin.page.goto(f"{staged.base}/ui/tools")
    card = admin.page.locator(f"[data-testid=mcp-server][data-id='{server['id']}']")
    await card.get_by_role("button", name="Refresh", exact=True).click()
    # then the server is listed again, and the page shows it ready, its button back
    deadline = time.monotonic() + 30
    query = "query($id: ID!) { mcpServer(id: $id) { refreshedAt } }"
    while (await staged.gql(staged.admin_token, query, id=server["id"]))["mcpServer"][
        "refreshedAt"
    ] == server["refreshedAt"]:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    await card.get_by_role("button", name="Refresh", exact=True).wait_for()
    assert await card.locator("[data-testid=mcp-status]").inner_text() == "ready"
    await admin.context.close()
    assert admin.errors == [] and admin.foreign == []
