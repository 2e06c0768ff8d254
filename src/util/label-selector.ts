/** A CRI label selector matches when every key/value it lists is present (the list filters' rule). */
export function labelsMatch(labels: Record<string, string>, selector: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}
