/**
 * Memoizes a mapping of a record that is mutated in place: the mapped value
 * is handed out again (the same object) as long as every input `inputs`
 * names (the record's fields that can change, and any further argument) is
 * still the same value (===). The mapping must read nothing else that can
 * change, and callers must treat the value as read-only, since every later
 * caller gets the same object.
 */
export function memoByRecord<R extends object, A extends unknown[], T>(
  inputs: (record: R, ...args: A) => readonly unknown[],
  map: (record: R, ...args: A) => T,
): (record: R, ...args: A) => T {
  const cache = new WeakMap<R, { inputs: readonly unknown[]; value: T }>();
  return (record, ...args) => {
    const now = inputs(record, ...args);
    const hit = cache.get(record);
    if (hit && hit.inputs.length === now.length && hit.inputs.every((v, i) => v === now[i])) return hit.value;
    const value = map(record, ...args);
    cache.set(record, { inputs: now, value });
    return value;
  };
}
