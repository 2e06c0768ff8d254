/** Quotes a name for an error or log line, cut short: names come from requests and files, of any length. */
export function quoteBounded(s: string, max = 120): string {
  return JSON.stringify(s.length > max ? `${s.slice(0, max)}…` : s);
}
