import { InvalidArgumentError } from '../errors';

/** The stream flags of an Exec or Attach request. */
export interface StreamFlags {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
}

/** The spec's rules for the stream flags, shared by Exec and Attach. */
export function checkStreams(rpc: string, r: StreamFlags): void {
  if (!r.stdin && !r.stdout && !r.stderr) throw new InvalidArgumentError(`${rpc}: one of stdin, stdout and stderr must be true`);
  if (r.tty && r.stderr) throw new InvalidArgumentError(`${rpc}: with tty, stderr must be false (a terminal has one output stream)`);
}
