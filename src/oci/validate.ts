import { InvalidArgumentError } from '../errors';
import { quote } from '../util/bounds';

/**
 * Errors about a request name the CRI field the way the proto spells it
 * (snake_case path), so a person reading the kubelet log can map it to the
 * pod spec without knowing this code.
 */
export function invalidField(field: string, message: string): InvalidArgumentError {
  return new InvalidArgumentError(`${field}: ${message}`);
}

/** Largest ID runc accepts for uid/gid (it stores them as int32). */
export const MAX_ID = 0x7fffffff;

/** CRI int64 -> JSON number, refusing values a double cannot hold exactly. */
export function toSafeNumber(value: bigint, field: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw invalidField(field, `value ${value} is out of range`);
  }
  return Number(value);
}

export function toId(value: bigint, field: string): number {
  if (value < 0n || value > BigInt(MAX_ID)) {
    throw invalidField(field, `${value} is not a valid id (0..${MAX_ID})`);
  }
  return Number(value);
}

/** Cleans an absolute container path ("/a//b/../c/" -> "/a/c"); rejects relative ones. */
export function cleanAbsolutePath(p: string, field: string): string {
  if (!p.startsWith('/')) throw invalidField(field, `path ${quote(p)} must be absolute`);
  const parts: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') parts.pop();
    else parts.push(part);
  }
  return '/' + parts.join('/');
}
