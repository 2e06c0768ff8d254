import { constants, promises as fs } from 'node:fs';
import { InvalidArgumentError } from '../errors';
import { quote } from '../util/bounds';

/**
 * Reads a file named by a request (a Localhost seccomp profile, ...) without
 * letting the request stall the daemon: only a regular file of at most
 * `maxBytes` is read. A FIFO, a device or a directory is refused before it
 * is opened, and the open is non-blocking anyway (O_NONBLOCK: a FIFO that
 * appears between the check and the open cannot hold a thread-pool thread),
 * then fstat of the opened file is checked again, so a swapped path is
 * caught too. `what` names the file in errors ("linux.security_context.seccomp").
 */
export async function readBoundedRegularFile(file: string, maxBytes: number, what: string): Promise<Buffer> {
  const refuse = (reason: string) => new InvalidArgumentError(`${what}: ${quote(file, 256)} ${reason}`);
  const kind = (st: { isFile(): boolean; isDirectory(): boolean; isFIFO(): boolean }) =>
    st.isDirectory() ? 'a directory' : st.isFIFO() ? 'a FIFO' : 'not a regular file';
  let before;
  try {
    before = await fs.stat(file);
  } catch (err) {
    throw refuse(`cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (!before.isFile()) throw refuse(`is ${kind(before)}; only a regular file is read`);
  if (before.size > maxBytes) throw refuse(`is ${before.size} bytes; at most ${maxBytes} are read`);
  let handle;
  try {
    handle = await fs.open(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    throw refuse(`cannot be opened: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw refuse(`is ${kind(st)}; only a regular file is read`);
    if (st.size > maxBytes) throw refuse(`is ${st.size} bytes; at most ${maxBytes} are read`);
    // One byte more than fstat said tells a file that grew meanwhile from one that did not.
    const buf = Buffer.alloc(st.size + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buf, length, buf.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > st.size) throw refuse('changed while being read');
    }
    return buf.subarray(0, length);
  } finally {
    await handle.close();
  }
}
