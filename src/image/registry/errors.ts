import { abortError, AdapterError, classOfKind, DigestMismatchError, ErrorClass, FailedPreconditionError, InternalError } from '../../errors';

/**
 * Registry-specific refinements of the domain errors. They keep the base
 * kind (so the gRPC mapping needs no change) but let the puller and tests
 * tell, say, a refused credential from a missing CA.
 */

/** The registry (or its token service) refused or demanded credentials: 401/403. */
export class RegistryAuthError extends FailedPreconditionError {
  status?: number;
}

export { DigestMismatchError };
export type { ErrorClass };

/**
 * A failure that does not yet know which pull it belongs to. Lower layers
 * throw these; the client turns them into domain errors naming the
 * reference and host, so every message reaching the kubelet has both.
 */
export class RegistryFailure extends Error {
  constructor(
    readonly errorClass: ErrorClass,
    readonly detail: string,
    readonly extra: { cause?: unknown; status?: number; expected?: string; actual?: string; aborted?: boolean; inline?: boolean } = {},
  ) {
    super(detail, { cause: extra.cause });
  }
}

/** Aborts end the whole operation: trying the next mirror would ignore the caller. */
export function isAbortFailure(err: unknown): boolean {
  return err instanceof RegistryFailure && err.extra.aborted === true;
}

/** What a signal's abort turns into: the kind its reason stands for (see abortError). */
export function abortFailure(signal: AbortSignal): RegistryFailure {
  const err = abortError(signal.reason, 'aborted');
  return new RegistryFailure(classOfKind(err.kind), err.message, { cause: signal.reason, aborted: true });
}

export function toDomainError(err: unknown, context: string): AdapterError {
  if (err instanceof RegistryFailure) {
    // Inline details read as a continuation of the context ("… received no data for 30 s").
    const e = new err.errorClass(`${context}${err.extra.inline ? ' ' : ': '}${err.detail}`, { cause: err.extra.cause ?? err });
    if (e instanceof RegistryAuthError) e.status = err.extra.status;
    if (e instanceof DigestMismatchError) {
      e.expected = err.extra.expected;
      e.actual = err.extra.actual;
    }
    return e;
  }
  if (err instanceof AdapterError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new InternalError(`${context}: ${message}`, { cause: err });
}

/**
 * Summarises an error body for a message: a registry's error document
 * (`{"errors":[{"code","message"}]}`), a token service's OAuth-style one
 * (`{"error","details"|"error_description"}`), or else its text, shortened.
 */
export function errorBodyDetail(body: Buffer): string {
  if (body.length === 0) return '';
  const text = body.subarray(0, ERROR_TEXT_SCAN).toString('utf8');
  try {
    const doc = JSON.parse(body.toString('utf8')) as { errors?: { code?: string; message?: string }[]; error?: unknown; details?: unknown; error_description?: unknown };
    if (Array.isArray(doc.errors) && doc.errors.length > 0) {
      return doc.errors.map((e) => [e.code, e.message].filter(Boolean).join(': ')).join('; ');
    }
    const oauth = [doc.error, doc.details ?? doc.error_description].filter((v): v is string => typeof v === 'string' && v !== '');
    if (oauth.length > 0) return oauth.join(': ');
  } catch {
    // not JSON; fall through to the text
  }
  return text.replace(/\s+/g, ' ').trim().slice(0, ERROR_TEXT_CHARS);
}

/** How much of a non-JSON error body is looked at, and how much of it is quoted. */
const ERROR_TEXT_SCAN = 4096;
const ERROR_TEXT_CHARS = 160;
