/**
 * Domain errors. Every layer throws these; the CRI edge maps them to a gRPC
 * status in one place (src/cri/status-mapping.ts). The message is shown to a
 * person running crictl or reading kubelet logs, so say what to do about it.
 */
export type ErrorKind =
  | 'NotFound'
  | 'AlreadyExists'
  | 'InvalidArgument'
  | 'FailedPrecondition'
  | 'Unavailable'
  | 'DeadlineExceeded'
  | 'Cancelled'
  | 'Unimplemented'
  | 'ResourceExhausted'
  | 'Internal';

export abstract class AdapterError extends Error {
  abstract readonly kind: ErrorKind;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

export class NotFoundError extends AdapterError {
  readonly kind = 'NotFound' as const;
}
export class AlreadyExistsError extends AdapterError {
  readonly kind = 'AlreadyExists' as const;
}
export class InvalidArgumentError extends AdapterError {
  readonly kind = 'InvalidArgument' as const;
}
export class FailedPreconditionError extends AdapterError {
  readonly kind = 'FailedPrecondition' as const;
}
export class UnavailableError extends AdapterError {
  readonly kind = 'Unavailable' as const;
}
export class DeadlineExceededError extends AdapterError {
  readonly kind = 'DeadlineExceeded' as const;
}
export class CancelledError extends AdapterError {
  readonly kind = 'Cancelled' as const;
}
export class UnimplementedError extends AdapterError {
  readonly kind = 'Unimplemented' as const;
}
export class ResourceExhaustedError extends AdapterError {
  readonly kind = 'ResourceExhausted' as const;
}
export class InternalError extends AdapterError {
  readonly kind = 'Internal' as const;
}

/** Bytes did not hash to the digest they were requested or stored by (a registry's answer, a blob at commit). */
export class DigestMismatchError extends InternalError {
  expected?: string;
  actual?: string;
}

/** What `p` resolves to, or undefined when it fails with NotFound: for objects whose absence is an answer. */
export async function unlessNotFound<T>(p: Promise<T>): Promise<T | undefined> {
  try {
    return await p;
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

/** Prefixes an error's message with context while keeping its kind. */
export function withContext(err: unknown, context: string): Error {
  if (err instanceof AdapterError) return errorOfKind(err.kind, `${context}: ${err.message}`, { cause: err });
  const message = err instanceof Error ? err.message : String(err);
  return new InternalError(`${context}: ${message}`, { cause: err });
}

export type ErrorClass = new (message: string, options?: { cause?: unknown }) => AdapterError;

const CLASSES: Record<ErrorKind, ErrorClass> = {
  NotFound: NotFoundError,
  AlreadyExists: AlreadyExistsError,
  InvalidArgument: InvalidArgumentError,
  FailedPrecondition: FailedPreconditionError,
  Unavailable: UnavailableError,
  DeadlineExceeded: DeadlineExceededError,
  Cancelled: CancelledError,
  Unimplemented: UnimplementedError,
  ResourceExhausted: ResourceExhaustedError,
  Internal: InternalError,
};

export function errorOfKind(kind: ErrorKind, message: string, options?: { cause?: unknown }): AdapterError {
  return new CLASSES[kind](message, options);
}

/** The class that stands for a kind (for code that builds the error later). */
export function classOfKind(kind: ErrorKind): ErrorClass {
  return CLASSES[kind];
}

/**
 * The error an aborted signal stands for, with `context` in front. The
 * adapter's own signals carry a typed reason (the CRI edge aborts with
 * DeadlineExceededError or CancelledError), which keeps its kind;
 * AbortSignal.timeout() carries a DOMException named TimeoutError, which is
 * a deadline; any other reason (a bare abort()) is a cancellation. The
 * reason's class decides, never its wording.
 */
export function abortError(reason: unknown, context: string): AdapterError {
  if (reason instanceof AdapterError) return errorOfKind(reason.kind, `${context}: ${reason.message}`, { cause: reason });
  // DOMException is not always an Error subclass across realms (jest), so test the name only.
  const isTimeout = typeof reason === 'object' && reason !== null && (reason as { name?: unknown }).name === 'TimeoutError';
  return isTimeout
    ? new DeadlineExceededError(`${context}: the caller's deadline passed`, { cause: reason })
    : new CancelledError(`${context}: the request was cancelled`, { cause: reason });
}
