/**
 * How integration tests find the harness that jest's globalSetup started:
 * globalSetup writes the harness description as JSON to a file and puts the
 * file's path in $CRI_ADAPTER_HARNESS (jest passes process.env changes made
 * in globalSetup on to the test workers).
 *
 *   import { loadHarnessEnv } from '../harness/env';
 *   const h = loadHarnessEnv();   // h.containerd.address, h.images.busybox, …
 */
import * as fs from 'fs';
import type { HarnessDescription } from './index';

export const HARNESS_ENV = 'CRI_ADAPTER_HARNESS';
/** globalThis key under which jest's globalSetup keeps the harness handle for globalTeardown. */
export const GLOBAL_HANDLE = '__CRI_ADAPTER_HARNESS__';

let cached: HarnessDescription | undefined;

/** The running harness's description; throws with a hint when there is none. */
export function loadHarnessEnv(): HarnessDescription {
  if (cached) return cached;
  const file = process.env[HARNESS_ENV];
  if (!file) {
    throw new Error(
      `${HARNESS_ENV} is not set: no test harness is running. Integration tests need jest's globalSetup ` +
        `(test/harness/jest-global-setup.ts) to start it; it is skipped when CRI_ADAPTER_SKIP_HARNESS=1 ` +
        `or when the run selects only test/unit.`,
    );
  }
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${HARNESS_ENV}=${file} cannot be read (harness already stopped?): ${(e as Error).message}`);
  }
  cached = JSON.parse(text) as HarnessDescription;
  return cached;
}

/** True when a harness is available (for describe.skip-style guards). */
export function harnessAvailable(): boolean {
  const file = process.env[HARNESS_ENV];
  return file !== undefined && file !== '' && fs.existsSync(file);
}
