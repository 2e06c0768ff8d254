import { InvalidArgumentError } from '../errors';
import type { SecurityProfile } from '../gen/runtime/v1/api';
import { seccompChoice, seccompProfileFile } from '../oci';
import { quote } from '../util/bounds';
import { readBoundedRegularFile } from './read-bounded-file';

/** Far above real profiles (Docker's default is about 20 KiB), far below a message limit. */
export const MAX_SECCOMP_PROFILE_BYTES = 1024 * 1024;

/**
 * Reads and parses the Localhost seccomp profile a security context names, or
 * undefined when it names none. Pods (the infra container) and containers both
 * come here, so the oci builders get the file's contents as an input and never
 * read the host themselves. Only a small regular file is read (a FIFO or a
 * device named here must not hold the request). `field` is the request field
 * for error messages.
 */
export async function readSeccompProfile(
  seccomp: SecurityProfile | undefined,
  deprecatedPath: string,
  field: string,
): Promise<unknown> {
  const file = seccompProfileFile(seccompChoice(seccomp, deprecatedPath, field));
  if (!file) return undefined;
  const text = (await readBoundedRegularFile(file, MAX_SECCOMP_PROFILE_BYTES, `${field} profile`)).toString('utf8');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new InvalidArgumentError(`${field}: profile ${quote(file, 256)} is not JSON: ${(err as Error).message.slice(0, 200)}`);
  }
}
