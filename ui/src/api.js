// GraphQL over HTTP (queries, mutations) and over one websocket (subscriptions).
import { signal } from "@preact/signals";
import { createClient } from "graphql-ws/client";

const TOKEN_KEY = "agentplane.token";
export const token = signal(localStorage.getItem(TOKEN_KEY) || "");
/** "idle" before any subscription, then "connecting" | "connected" | "reconnecting". */
export const link = signal("idle");
/** Who is signed in: `{kind, role, tokenId, tenant}` from the `viewer` query. */
export const viewer = signal(null);

export function setToken(value) {
  token.value = value;
  if (value) localStorage.setItem(TOKEN_KEY, value);
  else localStorage.removeItem(TOKEN_KEY);
  resetSocket();
}

export class GraphQLError extends Error {
  constructor(errors, status) {
    super(errors.map((e) => e.message).join("; "));
    this.errors = errors;
    this.code = errors[0]?.extensions?.code || (status ? `HTTP_${status}` : "NETWORK");
  }
}

export async function gql(query, variables = {}) {
  let response;
  try {
    response = await fetch("/graphql", {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/graphql-response+json, application/json",
        ...(token.value ? { Authorization: `Bearer ${token.value}` } : {}),
      },
      body: JSON.stringify({ query, variables }),
    });
  } catch {
    throw new GraphQLError([{ message: "The server cannot be reached" }]);
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new GraphQLError([{ message: `HTTP ${response.status}` }], response.status);
  }
  if (body.errors?.length) {
    const error = new GraphQLError(body.errors, response.status);
    if (error.code === "UNAUTHENTICATED") signedOut(error.message);
    throw error;
  }
  return body.data;
}

/** Set when the server refuses our token, to send the user back to sign-in. */
export const authProblem = signal("");

function signedOut(message) {
  authProblem.value = message || "Your session ended; sign in again";
  viewer.value = null;
}

// graphql-ws' defaults (retryAttempts 5, shouldRetry = isLikeCloseEvent) give up for good
// while the server is down: a refused connection fires a plain Event, not a CloseEvent.
// We retry forever with capped, jittered backoff; only a refused token (4403) stops us.
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
let client = null;
let active = 0; // open subscriptions: with none, the lazy socket closes and that is no outage

function socket() {
  if (client) return client;
  client = createClient({
    url: `${location.origin.replace(/^http/, "ws")}/graphql`,
    connectionParams: () => ({ Authorization: `Bearer ${token.value}` }),
    lazy: true,
    keepAlive: 10_000,
    retryAttempts: Number.POSITIVE_INFINITY,
    shouldRetry: (event) => {
      if (event?.code === 4403) {
        signedOut("The server refused your token");
        return false;
      }
      return true;
    },
    retryWait: (retries) => sleep(Math.min(4000, 250 * 2 ** retries) * (0.5 + Math.random() / 2)),
    on: {
      connecting: () => {
        link.value = link.value === "idle" ? "connecting" : "reconnecting";
      },
      connected: () => {
        link.value = "connected";
      },
      closed: () => {
        link.value = active > 0 ? "reconnecting" : "idle";
      },
    },
  });
  return client;
}

function resetSocket() {
  client?.dispose();
  client = null;
  link.value = "idle";
}

/**
 * Subscribe; `payload.variables` may be changed in place by the caller (graphql-ws sends
 * this same object again when it reconnects, so a resumed `taskEvents` carries the
 * current `afterSeq`). Returns an unsubscribe function.
 */
export function subscribe(payload, { next, error, complete }) {
  let open = true;
  const end = () => {
    if (open) active -= 1;
    open = false;
  };
  active += 1;
  const stop = socket().subscribe(payload, {
    next: (result) => {
      if (result.errors?.length) error?.(new GraphQLError(result.errors));
      else next(result.data);
    },
    error: (err) => {
      end();
      const errors = Array.isArray(err) ? err : [{ message: String(err?.reason || err?.message || "connection closed") }];
      error?.(new GraphQLError(errors));
    },
    complete: () => {
      end();
      complete?.();
    },
  });
  return () => {
    end();
    stop();
  };
}

export async function loadViewer() {
  const data = await gql(VIEWER);
  viewer.value = data.viewer;
  authProblem.value = "";
  return data.viewer;
}

export const VIEWER = `query Viewer { viewer { kind role tokenId tenant { id name displayName } } }`;

/** Roles that may act on tasks (the server checks again; this only hides buttons). */
export const canAct = (v) => ["operator", "tenant_admin", "platform_admin"].includes(v?.role);

/** Roles holding `approval:decide` (tenant_admin, operator; platform admins hold everything). */
export const canDecide = canAct;
/** Roles holding `tool:write`: they may refresh an MCP server. */
export const canWriteTools = (v) => ["tenant_admin", "platform_admin"].includes(v?.role);

// What each built-in role may read (resolvers/permissions.py), to show only pages that work.
const READS = {
  tasks: ["platform_admin", "tenant_admin", "operator", "viewer"],
  audit: ["platform_admin", "tenant_admin", "billing"],
  tools: ["platform_admin", "tenant_admin", "operator", "viewer"],
};
READS.approvals = READS.tasks; // approval requests are read with `task:read`
export const canRead = (v, what) => !READS[what] || READS[what].includes(v?.role);
