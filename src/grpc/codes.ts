import { status as GrpcStatus } from '@grpc/grpc-js';
import type { ErrorKind } from '../errors';

/** The one table between the adapter's error kinds and gRPC status codes, used in both directions. */
export const KIND_TO_CODE: Record<ErrorKind, GrpcStatus> = {
  NotFound: GrpcStatus.NOT_FOUND,
  AlreadyExists: GrpcStatus.ALREADY_EXISTS,
  InvalidArgument: GrpcStatus.INVALID_ARGUMENT,
  FailedPrecondition: GrpcStatus.FAILED_PRECONDITION,
  Unavailable: GrpcStatus.UNAVAILABLE,
  DeadlineExceeded: GrpcStatus.DEADLINE_EXCEEDED,
  Cancelled: GrpcStatus.CANCELLED,
  Unimplemented: GrpcStatus.UNIMPLEMENTED,
  ResourceExhausted: GrpcStatus.RESOURCE_EXHAUSTED,
  Internal: GrpcStatus.INTERNAL,
};

const CODE_TO_KIND = new Map<GrpcStatus, ErrorKind>(
  Object.entries(KIND_TO_CODE).map(([kind, code]) => [code, kind as ErrorKind]),
);

/** Codes with no kind of their own (UNKNOWN, DATA_LOSS, ...) are Internal. */
export function kindOfCode(code: GrpcStatus): ErrorKind {
  return CODE_TO_KIND.get(code) ?? 'Internal';
}

/** The code's name as gRPC spells it (NOT_FOUND): for log fields and metric labels. */
export function codeName(code: GrpcStatus): string {
  return GrpcStatus[code] ?? String(code);
}
