import { status as GrpcStatus, StatusObject, Metadata } from '@grpc/grpc-js';
import { AdapterError } from '../errors';
import { KIND_TO_CODE } from '../grpc/codes';

/**
 * The single place where errors become gRPC status. Anything that is not an
 * AdapterError is a bug or an unexpected failure: INTERNAL, with its message.
 */
export function toStatus(err: unknown): Partial<StatusObject> & { code: GrpcStatus; details: string } {
  if (err instanceof AdapterError) {
    return { code: KIND_TO_CODE[err.kind], details: err.message, metadata: new Metadata() };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { code: GrpcStatus.INTERNAL, details: `internal error: ${message}`, metadata: new Metadata() };
}

export { codeName } from '../grpc/codes';
