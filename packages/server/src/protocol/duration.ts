/** Durations in configuration and the CLI: a number of seconds, or `30s`, `10m`, `12h`, `90d`. */
const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

export function parseDuration(value: string | number): number | null {
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0 ? value : null;
  const m = /^(\d{1,9})\s*([smhd]?)$/.exec(value.trim());
  if (!m) return null;
  return Number(m[1]) * (UNITS[m[2] || 's'] ?? 1);
}
