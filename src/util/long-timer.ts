/** The longest delay Node's timers hold; a longer one fires at once (with a warning). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export interface LongTimer {
  /** When it fires, in ms since the epoch (may be far beyond any date: a CRI grace period is an int64 of seconds). */
  readonly at: number;
  clear(): void;
}

/**
 * Runs `fn` at `at` (ms since the epoch), however far away: the wait is cut
 * into pieces a Node timer can hold, so a grace period of 2^63-1 seconds
 * waits (for ever, in practice) instead of firing at once. Unref'd: a
 * pending timer never keeps the process alive.
 */
export function setTimerAt(at: number, fn: () => void): LongTimer {
  let handle: NodeJS.Timeout | undefined;
  let cleared = false;
  const arm = (): void => {
    if (cleared) return;
    const remaining = at - Date.now();
    if (remaining <= 0) {
      fn();
      return;
    }
    handle = setTimeout(remaining > MAX_TIMER_MS ? arm : fn, Math.min(remaining, MAX_TIMER_MS));
    handle.unref();
  };
  arm();
  return {
    at,
    clear() {
      cleared = true;
      if (handle) clearTimeout(handle);
    },
  };
}
