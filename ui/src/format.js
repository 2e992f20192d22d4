export const usd = (value) => {
  if (value === null || value === undefined) return "—";
  const abs = Math.abs(value);
  const digits = abs === 0 ? 2 : abs < 0.01 ? 6 : abs < 1 ? 4 : 2;
  return `$${value.toFixed(digits)}`;
};
export const num = (value) => (value === null || value === undefined ? "—" : value.toLocaleString("en-US"));
export const when = (iso) => (iso ? new Date(iso).toISOString().replace("T", " ").slice(0, 19) : "—");
export const ms = (value) => (value === null || value === undefined ? "—" : value < 1000 ? `${value} ms` : `${(value / 1000).toFixed(2)} s`);
export const statusClass = (status) => `status status-${String(status || "").toLowerCase()}`;
export const pct = (part, whole) => (whole ? Math.min(100, (100 * part) / whole) : 0);
/** How long ago (or, for a future time, in how long): "42 s", "5 min", "3 h", "2 d". */
export const span = (iso, now = Date.now()) => {
  if (!iso) return "—";
  const s = Math.abs(now - Date.parse(iso)) / 1000;
  return s < 60 ? `${Math.floor(s)} s` : s < 3600 ? `${Math.floor(s / 60)} min` : s < 86400 ? `${Math.floor(s / 3600)} h` : `${Math.floor(s / 86400)} d`;
};
