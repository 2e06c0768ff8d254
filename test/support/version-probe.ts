import path from 'node:path';
import { Worker } from 'node:worker_threads';

/** What a Version probe saw while a request ran. */
export interface ProbeResult<T> {
  /** The request's answer, or the error it failed with. */
  outcome: { ok: true; value: T } | { ok: false; error: unknown };
  /** The slowest Version round trip while the request was in flight (and shortly after). */
  maxMs: number;
  /** Version calls answered meanwhile. */
  samples: number;
}

// The probe runs in a worker thread with a client of its own, so the test's own work (encoding a
// 100 MB request, say) cannot delay it: what it measures is the daemon's event loop.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { credentials } = require(workerData.grpc);
const { RuntimeServiceClient } = require(workerData.api);
const client = new RuntimeServiceClient('unix://' + workerData.socket, credentials.createInsecure());
let stop = false, maxMs = 0, samples = 0, warm = false;
parentPort.on('message', () => { stop = true; });
const once = () => new Promise((resolve) => {
  const t0 = performance.now();
  client.version({ version: '' }, { deadline: Date.now() + 10000 }, (err) => {
    const ms = performance.now() - t0;
    if (!err && warm) { samples++; if (ms > maxMs) maxMs = ms; }
    resolve(err);
  });
});
(async () => {
  await once();
  warm = true;
  parentPort.postMessage({ ready: true });
  while (!stop) {
    await once();
    await new Promise((r) => setTimeout(r, 5));
  }
  client.close();
  parentPort.postMessage({ maxMs, samples });
})();
`;

/**
 * Runs `work` (a CRI request through the socket) while a worker thread
 * calls Version every few milliseconds, and keeps probing for `afterMs`
 * after it settles (a stall may come after the answer: logging, cleanup).
 */
export async function whileProbingVersion<T>(socket: string, work: () => Promise<T>, afterMs = 300): Promise<ProbeResult<T>> {
  const worker = new Worker(WORKER, {
    eval: true,
    workerData: {
      socket,
      grpc: require.resolve('@grpc/grpc-js'),
      api: path.resolve(__dirname, '..', '..', 'dist', 'src', 'gen', 'runtime', 'v1', 'api.js'),
    },
  });
  const messages: Array<Record<string, number | boolean>> = [];
  let notify: (() => void) | undefined;
  worker.on('message', (m: Record<string, number | boolean>) => {
    messages.push(m);
    notify?.();
  });
  const next = () =>
    new Promise<Record<string, number | boolean>>((resolve, reject) => {
      const take = () => {
        const m = messages.shift();
        if (m) resolve(m);
        else notify = take;
      };
      worker.once('error', reject);
      take();
    });
  await next();
  let outcome: ProbeResult<T>['outcome'];
  try {
    outcome = { ok: true, value: await work() };
  } catch (error) {
    outcome = { ok: false, error };
  }
  await new Promise((r) => setTimeout(r, afterMs));
  worker.postMessage('stop');
  const result = await next();
  await worker.terminate();
  return { outcome, maxMs: Number(result.maxMs), samples: Number(result.samples) };
}
