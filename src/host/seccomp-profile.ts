import { promises as fs } from 'node:fs';
import { InvalidArgumentError } from '../errors';
import type { SecurityProfile } from '../gen/runtime/v1/api';
import { seccompChoice, seccompProfileFile } from '../oci';

/**
 * Reads and parses the Localhost seccomp profile a security context names, or
 * undefined when it names none. Pods (the infra container) and containers both
 * come here, so the oci builders get the file's contents as an input and never
 * read the host themselves. `field` is the request field for error messages.
 */
export async function readSeccompProfile(
  seccomp: SecurityProfile | undefined,
  deprecatedPath: string,
  field: string,
): Promise<unknown> {
  const file = seccompProfileFile(seccompChoice(seccomp, deprecatedPath, field));
  if (!file) return undefined;
  try {
    return JSON.parse(await fs.readFile(file, 'utf8'));
  } catch (err) {
    throw new InvalidArgumentError(`${field}: cannot read profile ${file}: ${(err as Error).message}`);
  }
}
