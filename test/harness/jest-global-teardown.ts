/**
 * jest globalTeardown: stops the harness that jest-global-setup.ts started
 * (kept on globalThis, which globalSetup and globalTeardown share). A harness
 * that setup merely reused ($CRI_ADAPTER_HARNESS set by an outer process) is
 * left to its owner.
 */
import { GLOBAL_HANDLE, HARNESS_ENV } from './env';
import type { Harness } from './index';

export default async function globalTeardown(): Promise<void> {
  const g = globalThis as Record<string, unknown>;
  const harness = g[GLOBAL_HANDLE] as Harness | undefined;
  if (!harness) return;
  delete g[GLOBAL_HANDLE];
  delete process.env[HARNESS_ENV];
  await harness.stop();
}
