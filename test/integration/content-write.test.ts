/**
 * writeBlob against the harness containerd: a download's pieces gathered into
 * pre-serialized 1 MiB WRITE messages (containerd/content.ts WriteChunk) must
 * reach the content store byte for byte, and a source that is longer or
 * shorter than its descriptor must fail before commit, leaving no ingest.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { ContainerdConnection } from '../../src/containerd/connection';
import { blobExists, readBlob, writeBlob } from '../../src/containerd/content';
import { InvalidArgumentError } from '../../src/errors';
import { silentLogger } from '../../src/log/logger';
import { loadHarnessEnv } from '../harness/env';

const h = loadHarnessEnv();
const NS = `it-content-${randomBytes(3).toString('hex')}`;
let conn: ContainerdConnection;
// Content nothing refers to is containerd's garbage: the writes happen under a lease, as a pull's do.
const LEASE = 'it-content-write';
const leased = { lease: LEASE };

beforeAll(async () => {
  conn = new ContainerdConnection({ address: h.containerd.address, namespace: NS, callTimeoutMs: 20_000 }, silentLogger());
  await conn.start();
  await conn.leases.create({ id: LEASE, labels: {} });
});
afterAll(async () => {
  await conn.leases.delete({ id: LEASE, sync: true }).catch(() => undefined);
  conn.close();
});

const digestOf = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** `data` as a stream of pieces of `pieceBytes` (the last one shorter). */
function piecesOf(data: Buffer, pieceBytes: number): Readable {
  const pieces: Buffer[] = [];
  for (let at = 0; at < data.length; at += pieceBytes) pieces.push(data.subarray(at, at + pieceBytes));
  return Readable.from(pieces);
}

async function ingests(): Promise<string[]> {
  return (await conn.content.listStatuses({ filters: [] })).statuses.map((s) => s.ref);
}

describe('writeBlob', () => {
  it.each([
    ['odd pieces across chunk boundaries', 2.5 * 1024 * 1024 + 7, 7001],
    ['one piece bigger than a chunk', 3 * 1024 * 1024 + 1, 3 * 1024 * 1024 + 1],
    ['exactly one chunk', 1024 * 1024, 65536],
    ['an empty blob', 0, 1],
  ])('stores %s byte for byte', async (_what, size, pieceBytes) => {
    const data = randomBytes(size);
    const digest = digestOf(data);
    await writeBlob(conn, { ref: `it-write-${digest}`, digest, size, labels: { 'it.label': 'x' }, source: piecesOf(data, pieceBytes) }, leased);
    const back = await readBlob(conn, digest, leased);
    expect(back.length).toBe(size);
    expect(back.equals(data)).toBe(true);
    const info = await conn.content.info({ digest }, leased);
    expect(info.info?.labels['it.label']).toBe('x');
  });

  it.each([
    ['one byte longer than its descriptor', 1024 * 1024 + 1, 1024 * 1024, /is larger than its descriptor says \(1048576 bytes\)/],
    ['short by half a chunk', 1024 * 1024 + 512 * 1024, 2 * 1024 * 1024, /ended after 1572864 of 2097152 bytes/],
    ['short at a chunk boundary', 1024 * 1024, 2 * 1024 * 1024, /ended after 1048576 of 2097152 bytes/],
  ])('refuses a source %s, commits nothing and leaves no ingest', async (_what, sent, declared, message) => {
    const data = randomBytes(sent);
    const digest = digestOf(randomBytes(8));
    const ref = `it-write-bad-${digest}`;
    const err = await writeBlob(conn, { ref, digest, size: declared, source: piecesOf(data, 50_000) }, leased).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as Error).message).toMatch(message);
    expect(await blobExists(conn, digest, leased)).toBe(false);
    expect(await ingests()).not.toContain(ref);
  });
});
