import { execFile } from 'node:child_process';
import os from 'node:os';
import type { RuntimeMap } from '../config/schema';

/** What one runtime handler can do on this node, as Status reports it. */
export interface HandlerFeatures {
  /** The handler's runc lists the "rro" mount option and the kernel has mount_setattr(2). */
  recursiveReadOnlyMounts: boolean;
  /** Why a feature is off, for logs and Status(verbose). */
  notes: string[];
}

const RUNC_SHIMS = new Set(['io.containerd.runc.v2', 'io.containerd.runc.v1', 'io.containerd.runtime.v1.linux']);
/** `runc features` answers from a table compiled into the binary; anything slower is broken. */
const PROBE_TIMEOUT_MS = 5000;
/** Bounds what is read from a misbehaving binary. */
const MAX_FEATURES_OUTPUT = 1 << 20;

/** mount_setattr(2) with AT_RECURSIVE came with Linux 5.12. */
export function kernelHasMountSetattr(release: string): boolean {
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (!m) return false;
  const major = Number(m[1]);
  const minor = Number(m[2]);
  return major > 5 || (major === 5 && minor >= 12);
}

/**
 * Judges the JSON of `runc features` (the runtime-spec "features" document):
 * "rro" among mountOptions means the binary understands recursive read-only
 * binds; the kernel must also have mount_setattr.
 */
export function featuresFromRuncOutput(output: string, kernelRelease: string): HandlerFeatures {
  let doc: unknown;
  try {
    doc = JSON.parse(output);
  } catch {
    return { recursiveReadOnlyMounts: false, notes: ['runc features printed no JSON'] };
  }
  const options = (doc as { mountOptions?: unknown }).mountOptions;
  const rro = Array.isArray(options) && options.includes('rro');
  const notes: string[] = [];
  if (!rro) notes.push('runc does not list the rro mount option');
  const kernelOk = kernelHasMountSetattr(kernelRelease);
  if (!kernelOk) notes.push(`kernel ${kernelRelease.slice(0, 40)} has no mount_setattr (needs 5.12)`);
  return { recursiveReadOnlyMounts: rro && kernelOk, notes };
}

function runFeatures(binary: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(binary, ['features'], { timeout: PROBE_TIMEOUT_MS, maxBuffer: MAX_FEATURES_OUTPUT }, (err, stdout) =>
      err ? reject(err) : resolve(stdout),
    );
  });
}

/**
 * Asks each handler's runc binary what it supports, once at start (a
 * binary upgraded later needs an adapter restart, as containerd's plugin
 * does). Handlers of other shims (VM runtimes) claim nothing: what their
 * guest can do is not ours to know.
 */
export async function probeRuntimeFeatures(runtimes: RuntimeMap, kernelRelease = os.release()): Promise<Map<string, HandlerFeatures>> {
  const out = new Map<string, HandlerFeatures>();
  await Promise.all(
    Object.entries(runtimes).map(async ([name, rt]) => {
      if (!RUNC_SHIMS.has(rt.type)) {
        out.set(name, { recursiveReadOnlyMounts: false, notes: [`runtime type ${rt.type} is not runc: features unknown`] });
        return;
      }
      const binary = rt.binaryName || 'runc';
      try {
        out.set(name, featuresFromRuncOutput(await runFeatures(binary), kernelRelease));
      } catch (err) {
        const why = (err as Error).message.split('\n')[0]!.slice(0, 200);
        out.set(name, { recursiveReadOnlyMounts: false, notes: [`${binary} features failed: ${why}`] });
      }
    }),
  );
  return out;
}
