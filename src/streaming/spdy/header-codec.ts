/**
 * SPDY/3 header blocks are one zlib stream per direction for the whole
 * connection, primed with the SPDY/3 dictionary.
 *
 * Inbound blocks go through one long-lived inflate stream. Node only offers
 * zlib contexts that outlive a call as asynchronous streams, so decoding is
 * asynchronous and callers must decode in frame order (HeaderInflater does
 * one block at a time).
 *
 * Outbound blocks go through one long-lived deflate stream the same way.
 * (Uncompressed zlib "stored" blocks, which could be made synchronously,
 * are valid zlib but Go's SPDY framer stalls on them from the second block
 * on: kubectl never saw our second SYN_REPLY.) The session awaits each
 * reply before the stream is handed out, so no data frame can overtake it.
 */
import * as zlib from 'node:zlib';
import { SPDY3_DICTIONARY } from './dictionary';
import { decodeHeaderBlock, encodeHeaderBlock } from './frames';

export class HeaderInflater {
  private readonly inflate = zlib.createInflate({ dictionary: SPDY3_DICTIONARY });
  private queue: Promise<unknown> = Promise.resolve();
  private failed: Error | null = null;

  constructor() {
    this.inflate.on('error', (err) => (this.failed = err));
  }

  decode(compressed: Buffer): Promise<Record<string, string>> {
    const run = this.queue.then(() => this.decodeOne(compressed));
    this.queue = run.catch(() => undefined);
    return run;
  }

  close(): void {
    this.inflate.destroy();
  }

  private async decodeOne(compressed: Buffer): Promise<Record<string, string>> {
    if (this.failed) throw this.failed;
    return decodeHeaderBlock(await flushThrough(this.inflate, compressed));
  }
}

/**
 * Writes `input` through a long-lived zlib stream and returns what came out
 * of it up to a sync flush: everything produced for the input has been
 * emitted by the time the flush completes.
 */
function flushThrough(z: zlib.Deflate | zlib.Inflate, input: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const onData = (c: Buffer) => chunks.push(c);
    const onError = (err: Error) => {
      z.off('data', onData);
      reject(err);
    };
    z.on('data', onData);
    z.once('error', onError);
    z.write(input);
    z.flush(zlib.constants.Z_SYNC_FLUSH, () => {
      z.off('data', onData);
      z.off('error', onError);
      resolve(Buffer.concat(chunks));
    });
  });
}

/** Outbound header blocks through one long-lived deflate stream, one block at a time, in call order. */
export class HeaderDeflater {
  private readonly deflate = zlib.createDeflate({ dictionary: SPDY3_DICTIONARY });
  private queue: Promise<unknown> = Promise.resolve();

  constructor() {
    this.deflate.on('error', () => undefined);
  }

  encode(headers: Record<string, string>): Promise<Buffer> {
    const run = this.queue.then(() => flushThrough(this.deflate, encodeHeaderBlock(headers)));
    this.queue = run.catch(() => undefined);
    return run;
  }

  close(): void {
    this.deflate.destroy();
  }
}
