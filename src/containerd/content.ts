import type { Readable } from 'node:stream';
import { ClientDuplexStream } from '@grpc/grpc-js';
import { abortError, AlreadyExistsError, DigestMismatchError, FailedPreconditionError, InvalidArgumentError, NotFoundError, unlessNotFound } from '../errors';
import { ContentService, WriteAction, WriteContentRequest, WriteContentResponse } from '../gen/containerd/services/content/v1/content';
import { varintSize, writeVarint } from '../grpc/varint';
import { CallContext, collectStream } from '../grpc/promisify';
import { callMetadata, callOptions, containerdCallOptions, fromGrpcError } from './call';
import type { ContainerdConnection } from './connection';

// containerd's default gRPC receive limit is 16 MiB; 1 MiB chunks keep each message well below it
// (and a download's socket-sized pieces are gathered up to it: containerd answers every message).
const CHUNK = 1024 * 1024;
/** WRITE messages of one blob queued towards containerd at once (see copyIntoContent). */
const WRITES_IN_FLIGHT = 2;

export interface BlobToWrite {
  /** Ingest ref: one per blob, so a resumed or concurrent write of the same blob is locked by containerd. */
  ref: string;
  digest: string;
  size: number;
  labels?: Record<string, string>;
  source: Readable;
  /** Told when a failed write's ingest could not be seen gone within CLEANUP_MS (the answer goes on regardless). */
  onIngestLingers?: (ref: string) => void;
}

/** How long a failed write waits for its ingest to be gone before it answers anyway. */
const CLEANUP_MS = 3000;

/**
 * Aborts an ingest and waits until containerd no longer lists it. A client-side
 * cancel does not wait for containerd's Write handler: it can still open the
 * ingest (a 0-byte one) after a first Abort found nothing, so the abort is
 * repeated until Status says NotFound. Bounded, so a hung containerd cannot
 * hold the pull's answer; returns whether the ingest was seen gone.
 */
async function discardIngest(conn: ContainerdConnection, ref: string, until: number): Promise<boolean> {
  for (let delay = 10; ; delay = Math.min(delay * 2, 200)) {
    const left = until - Date.now();
    if (left <= 0) return false;
    try {
      await unlessNotFound(conn.content.abort({ ref }, { deadline: Date.now() + left }));
      if ((await unlessNotFound(conn.content.status({ ref }, { deadline: Date.now() + left }))) === undefined) return true;
    } catch {
      // A failed abort or status is retried until the bound.
    }
    await new Promise((r) => setTimeout(r, delay));
  }
}

/**
 * Aborts partial ingests whose ref starts with `prefix`: the writes of a
 * process that is gone (an adapter killed mid-pull), which containerd keeps
 * on disk for ever otherwise. Only for a moment when no write of this
 * process runs (start). Returns how many were aborted.
 */
export async function abortIngests(conn: ContainerdConnection, prefix: string, ctx: CallContext = {}): Promise<number> {
  const { statuses } = await conn.content.listStatuses({ filters: [] }, ctx);
  let aborted = 0;
  for (const s of statuses.filter((st) => st.ref.startsWith(prefix))) {
    await conn.content.abort({ ref: s.ref }, ctx).then(
      () => aborted++,
      () => undefined,
    );
  }
  return aborted;
}

/**
 * Streams a blob into containerd's content store. containerd verifies size
 * and digest at commit, so a corrupt or short download never becomes
 * content. A blob committed meanwhile by someone else is success. Any stale partial
 * ingest under the same ref (say, from an adapter killed mid-pull) is
 * aborted first, so the write always starts from byte 0 of this source.
 */
export async function writeBlob(conn: ContainerdConnection, blob: BlobToWrite, ctx: CallContext): Promise<void> {
  // The source may fail (a cancelled download) before the copy loop reads it; an 'error' with no
  // listener would take the whole daemon down. Keep the first one and report it as this write's.
  let sourceError: unknown;
  const onSourceError = (err: unknown) => (sourceError ??= err);
  blob.source.on('error', onSourceError);
  try {
    await unlessNotFound(conn.content.abort({ ref: blob.ref }, ctx));
    await copyIntoContent(conn, blob, ctx, () => sourceError);
  } finally {
    // A drained source is already closed; one left mid-way must release its connection. The error
    // listener stays: a source may still report its abort after this.
    blob.source.destroy();
  }
}

/** WriteContentRequest.data's field number and wire type (length-delimited), as one tag byte. */
const DATA_FIELD_TAG = (6 << 3) | 2;

/**
 * One WRITE message of a blob, serialized before its data arrives: the
 * request's other fields, then the data field's tag and length, then room
 * the download's pieces are copied into. A megabyte of layer is copied once
 * into its message (and once more by grpc-js into the frame) instead of four
 * times through ts-proto's writer and Buffer.from.
 */
class WriteChunk {
  readonly message: Buffer;
  /** The buffer the message is built in, to give back once grpc-js has taken the message. */
  readonly space: Buffer;
  private readonly dataAt: number;
  private filled = 0;

  constructor(
    head: Uint8Array,
    readonly length: number,
    buffers: ChunkBuffers,
  ) {
    this.dataAt = head.byteLength + 1 + varintSize(length);
    this.space = buffers.take(this.dataAt + length);
    this.message = this.space.subarray(0, this.dataAt + length);
    this.message.set(head, 0);
    writeVarint(this.message, writeVarint(this.message, head.byteLength, DATA_FIELD_TAG), length);
  }

  /** Copies what fits of `piece` from `from`; returns how many bytes it took. */
  fill(piece: Buffer, from: number): number {
    const n = Math.min(piece.length - from, this.length - this.filled);
    piece.copy(this.message, this.dataAt + this.filled, from, from + n);
    this.filled += n;
    return n;
  }

  get full(): boolean {
    return this.filled === this.length;
  }

  get received(): number {
    return this.filled;
  }
}

/** Room for a WRITE message's other fields (ref, digest, total, offset: well under this). */
const HEAD_ROOM = 1024;
const POOLED_BYTES = HEAD_ROOM + CHUNK;

/**
 * The megabyte buffers one blob's WRITE messages are built in, reused: a
 * message handed to grpc-js is copied into its frame at once, so its buffer
 * is free again when the write's callback runs. A new buffer per megabyte
 * was V8 external memory churn (20 MiB a pull, plus grpc-js's frames and the
 * download's socket reads), and the full GCs it set off were a fifth of a
 * cold pull's CPU in the adapter.
 */
class ChunkBuffers {
  private readonly free: Buffer[] = [];

  /** A buffer of at least `bytes`; one above the pooled size (a head larger than HEAD_ROOM) is its own. */
  take(bytes: number): Buffer {
    if (bytes > POOLED_BYTES) return Buffer.allocUnsafeSlow(bytes);
    return this.free.pop() ?? Buffer.allocUnsafeSlow(POOLED_BYTES);
  }

  give(space: Buffer): void {
    if (space.byteLength === POOLED_BYTES) this.free.push(space);
  }
}

async function copyIntoContent(conn: ContainerdConnection, blob: BlobToWrite, ctx: CallContext, sourceFailed: () => unknown): Promise<void> {
  // No default deadline: a big layer on a slow link takes as long as it takes. A source that
  // stops sending fails by its own stall timeout, and the caller's signal cancels the stream.
  // Requests go out already serialized (WriteChunk); answers are decoded as generated.
  const stream: ClientDuplexStream<Buffer, WriteContentResponse> = conn.streaming.content.makeBidiStreamRequest(
    ContentService.write.path,
    (message: Buffer) => message,
    ContentService.write.responseDeserialize,
    callMetadata(conn.callDefaults, ctx),
    callOptions(conn.callDefaults, { ...ctx, deadline: ctx.deadline ?? Infinity }),
  );
  const what = 'Content.Write';
  // The call's last event: containerd's handler has returned (grpc-go sends the status after it).
  const ended = new Promise<void>((resolve) => stream.once('status', () => resolve()));
  // A caller that gives up stops the copy at its next step; the stream itself is wound down below.
  let abandon!: (reason: unknown) => void;
  const abandoned = new Promise<never>((_, reject) => (abandon = reject));
  abandoned.catch(() => undefined);
  const onAbort = () => abandon(abortError(ctx.signal!.reason, `containerd ${what}`));
  ctx.signal?.addEventListener('abort', onAbort, { once: true });

  // containerd answers every request in order; we pipeline writes and check the answers as they come.
  let failure: Error | undefined;
  // Set once every byte is sent and the COMMIT is on its way: containerd then answers
  // FailedPrecondition only when what it received does not hash to `expected` (the size is
  // right by then; a locked ref is Unavailable). Pulls rely on this check instead of hashing
  // each layer a second time in the adapter.
  let committing = false;
  const done = new Promise<WriteContentResponse>((resolve, reject) => {
    stream.on('data', (r: WriteContentResponse) => {
      if (r.action === WriteAction.COMMIT) resolve(r);
    });
    stream.on('error', (err: Parameters<typeof fromGrpcError>[0]) => {
      // Cancelled by us because the caller's signal fired: report why it fired.
      failure = ctx.signal?.aborted ? abortError(ctx.signal.reason, `containerd ${what}`) : fromGrpcError(err, what);
      if (committing && failure instanceof FailedPreconditionError) failure = digestRefused(blob, failure);
      reject(failure);
    });
    stream.on('end', () => reject(failure ?? new Error('containerd closed the content write stream before the commit')));
  });
  // Failures are observed through `failure` while writing and through `await done` at the end.
  done.catch(() => undefined);

  // At most WRITES_IN_FLIGHT messages handed to grpc-js and not yet written out: its stream
  // buffers 16 messages (16 MiB of a layer) before it asks us to wait, which is where a pull's
  // memory went (three layers at once: ~50 MB, kept by malloc after the pull). Two keep the
  // socket busy while the next megabyte is filled.
  let inFlight = 0;
  let written: (() => void) | undefined;
  const buffers = new ChunkBuffers();
  /** Queues one message; `sent` runs once grpc-js has taken it (framed a copy and written that). */
  const send = (message: Buffer, sent?: () => void) =>
    Promise.race([
      new Promise<void>((resolve) => {
        inFlight++;
        stream.write(message, () => {
          sent?.();
          inFlight--;
          const wake = written;
          written = undefined;
          wake?.();
        });
        if (inFlight < WRITES_IN_FLIGHT) resolve();
        else written = resolve;
      }),
      // A stream that failed or a caller that left never drains.
      done.then(() => undefined),
      abandoned,
    ]);
  const total = BigInt(blob.size);
  const request = (action: WriteAction, offset: number, labels: Record<string, string> = {}) =>
    WriteContentRequest.encode({ action, ref: blob.ref, total, expected: blob.digest, offset: BigInt(offset), data: EMPTY, labels }).finish();

  try {
    await send(Buffer.from(request(WriteAction.STAT, 0)));
    // Bytes sent in full chunks; the chunk being filled starts there.
    let offset = 0;
    let chunk: WriteChunk | undefined;
    if (sourceFailed()) throw sourceFailed();
    for await (const piece of blob.source as AsyncIterable<Buffer>) {
      if (failure) throw failure;
      for (let at = 0; at < piece.length; ) {
        if (!chunk) {
          if (offset >= blob.size) {
            throw new InvalidArgumentError(`blob ${blob.digest} is larger than its descriptor says (${blob.size} bytes)`);
          }
          chunk = new WriteChunk(request(WriteAction.WRITE, offset), Math.min(CHUNK, blob.size - offset), buffers);
        }
        at += chunk.fill(piece, at);
        if (chunk.full) {
          const { space } = chunk;
          await send(chunk.message, () => buffers.give(space));
          offset += chunk.length;
          chunk = undefined;
        }
      }
    }
    if (chunk || offset !== blob.size) {
      throw new InvalidArgumentError(`blob ${blob.digest} ended after ${offset + (chunk?.received ?? 0)} of ${blob.size} bytes`);
    }
    committing = true;
    await send(Buffer.from(request(WriteAction.COMMIT, offset, blob.labels)));
    stream.end();
    await done;
  } catch (err) {
    // Leave no half-written ingest behind (the caller destroys the source), before the caller
    // answers. The stream is half-closed, not cancelled, and the abort waits for its end: a
    // handler cancelled while messages are still queued for it can open the ingest again after
    // the abort (a 0-byte ingest that then stays for ever); one that reads to the end of the
    // stream returns by itself. A containerd that does not end it in time is cancelled.
    // Both waits share the one CLEANUP_MS bound: half of it for containerd to end the stream,
    // the rest (at least) for the abort.
    const until = Date.now() + CLEANUP_MS;
    stream.end();
    const timer = setTimeout(() => stream.cancel(), CLEANUP_MS / 2);
    await ended;
    clearTimeout(timer);
    if (!(await discardIngest(conn, blob.ref, until))) blob.onIngestLingers?.(blob.ref);
    if (err instanceof AlreadyExistsError) return;
    throw err;
  } finally {
    ctx.signal?.removeEventListener('abort', onAbort);
  }
}

const EMPTY = Buffer.alloc(0);

function digestRefused(blob: BlobToWrite, cause: Error): DigestMismatchError {
  const err = new DigestMismatchError(
    `blob ${blob.digest}: the ${blob.size} bytes received do not hash to that digest (containerd's content store refused to commit them)`,
    { cause },
  );
  err.expected = blob.digest;
  return err;
}

export async function blobExists(conn: ContainerdConnection, digest: string, ctx?: CallContext): Promise<boolean> {
  return (await unlessNotFound(conn.content.info({ digest }, ctx))) !== undefined;
}

/** Reads a whole (small) blob: manifests, indexes and image configs. */
export async function readBlob(conn: ContainerdConnection, digest: string, ctx?: CallContext): Promise<Buffer> {
  const parts = await collectStream(
    conn.streaming.content.read.bind(conn.streaming.content),
    { digest, offset: 0n, size: 0n },
    'Content.Read',
    containerdCallOptions(conn.callDefaults),
    ctx,
  );
  return Buffer.concat(parts.map((p) => p.data));
}

/** Sets labels on existing content (containerd replaces only the listed label fields). */
export async function setBlobLabels(
  conn: ContainerdConnection,
  digest: string,
  labels: Record<string, string>,
  ctx?: CallContext,
): Promise<void> {
  await conn.content.update(
    {
      info: { digest, size: 0n, labels, createdAt: undefined, updatedAt: undefined },
      updateMask: Object.keys(labels).map((k) => `labels.${k}`),
    },
    ctx,
  );
}

/** Removes one label from a blob (a field in the update mask that the info leaves out is deleted). */
export async function removeBlobLabel(conn: ContainerdConnection, digest: string, key: string, ctx?: CallContext): Promise<void> {
  await conn.content.update(
    { info: { digest, size: 0n, labels: {}, createdAt: undefined, updatedAt: undefined }, updateMask: [`labels.${key}`] },
    ctx,
  );
}

/** Digests of the blobs that carry a label, whatever its value. */
export async function blobsWithLabel(conn: ContainerdConnection, key: string, ctx?: CallContext): Promise<string[]> {
  const pages = await collectStream(
    conn.streaming.content.list.bind(conn.streaming.content),
    // containerd's filter syntax: a quoted field path alone means "present".
    { filters: [`labels."${key}"`] },
    'Content.List',
    containerdCallOptions(conn.callDefaults),
    ctx,
  );
  return pages.flatMap((p) => p.info.map((i) => i.digest));
}
