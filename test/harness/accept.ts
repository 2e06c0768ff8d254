/**
 * A node for acceptance runs with the real cri-tools clients: the harness
 * (private containerd with its own CRI plugin, local registry, CNI bridge),
 * the adapter, and the critest image stand-ins (critest-images.ts) in the
 * registry. Prints both CRI endpoints (the adapter's and containerd's own
 * plugin, for side-by-side comparison) and runs until SIGINT/SIGTERM.
 *
 *   npm run build && node dist/test/harness/accept.js
 */
import path from 'node:path';
import { startHarnessAdapter } from '../support/harness-adapter';
import { pushCritestImages } from './critest-images';
import { startHarness } from './index';

async function main(): Promise<void> {
  const h = await startHarness({ log: (m) => process.stderr.write(`${m}\n`) });
  const adapter = await startHarnessAdapter(h, { namespace: 'cri-adapter-accept', extraArgs: ['--log-level', 'info'] });
  try {
    const names = await pushCritestImages(h.registry.host, path.join(h.tmpDir, 'build'));
    console.log(`registry ${h.registry.host}: ${names.length} critest images pushed`);
    console.log(`ADAPTER=unix://${adapter.socket}`);
    console.log(`PLUGIN=unix://${h.containerd.address}`);
    console.log(`adapter log: ${adapter.dir} (stderr kept in memory; the daemon logs to its stderr)`);
    console.log('critest --runtime-endpoint $ADAPTER --image-endpoint $ADAPTER');
    await new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    });
  } finally {
    await adapter.stop();
    await h.stop();
  }
}

void main();
