// A small history router: the dashboard's state (page, filters, selected step) is its URL.
import { signal } from "@preact/signals";

const BASE = "/ui";
const read = () => ({
  path: location.pathname.slice(BASE.length).replace(/\/+$/, "") || "/",
  query: new URLSearchParams(location.search),
});
export const route = signal(read());
addEventListener("popstate", () => {
  route.value = read();
});

/** Go to `path` (relative to /ui), with `query` as an object of strings (empty ones dropped). */
export function navigate(path, query = {}, { replace = false } = {}) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") params.set(key, String(value));
  }
  const search = params.toString();
  const url = `${BASE}${path === "/" ? "/" : path}${search ? `?${search}` : ""}`;
  if (url === location.pathname + location.search) return;
  history[replace ? "replaceState" : "pushState"](null, "", url);
  route.value = read();
}

/** Keep the current path, change some query parameters. */
export function setQuery(changes, options = { replace: true }) {
  const current = Object.fromEntries(route.value.query.entries());
  navigate(route.value.path, { ...current, ...changes }, options);
}

export const href = (path) => `${BASE}${path}`;

export function onLinkClick(event) {
  const anchor = event.target.closest?.("a[href]");
  if (!anchor || anchor.target || event.metaKey || event.ctrlKey || event.shiftKey) return;
  const url = new URL(anchor.href);
  if (url.origin !== location.origin || !url.pathname.startsWith(`${BASE}/`)) return;
  event.preventDefault();
  navigate(url.pathname.slice(BASE.length) || "/", Object.fromEntries(url.searchParams));
}
