import * as grpc from "@grpc/grpc-js";

/** An error with a gRPC status code; the handler wrappers send its code and message to the client. */
export class ServiceError extends Error {
  readonly code: grpc.status;
  readonly metadata: grpc.Metadata | undefined;

  constructor(code: grpc.status, message: string, metadata?: grpc.Metadata) {
    super(message);
    this.name = "ServiceError";
    this.code = code;
    this.metadata = metadata;
  }
}

const make = (code: grpc.status) => (message: string, metadata?: grpc.Metadata) => new ServiceError(code, message, metadata);

export const invalidArgument = make(grpc.status.INVALID_ARGUMENT);
export const notFound = make(grpc.status.NOT_FOUND);
export const alreadyExists = make(grpc.status.ALREADY_EXISTS);
export const failedPrecondition = make(grpc.status.FAILED_PRECONDITION);
export const outOfRange = make(grpc.status.OUT_OF_RANGE);
export const resourceExhausted = make(grpc.status.RESOURCE_EXHAUSTED);
export const permissionDenied = make(grpc.status.PERMISSION_DENIED);
export const unauthenticated = make(grpc.status.UNAUTHENTICATED);
export const aborted = make(grpc.status.ABORTED);
export const unavailable = make(grpc.status.UNAVAILABLE);
export const unimplemented = make(grpc.status.UNIMPLEMENTED);
export const deadlineExceeded = make(grpc.status.DEADLINE_EXCEEDED);
export const cancelled = make(grpc.status.CANCELLED);
export const internal = make(grpc.status.INTERNAL);

/** What a handler's failure becomes on the wire. */
export interface MappedStatus {
  code: grpc.status;
  details: string;
  metadata?: grpc.Metadata;
  /** True when the error is unexpected (INTERNAL): log it with its stack. */
  unexpected: boolean;
}

/**
 * Maps a thrown value to a gRPC status: ServiceError → its code; RangeError/TypeError (how the libraries in
 * this repository reject bad input) → INVALID_ARGUMENT with the message; anything else → INTERNAL.
 */
export function toStatus(err: unknown): MappedStatus {
  if (err instanceof ServiceError) return { code: err.code, details: err.message, metadata: err.metadata, unexpected: false };
  if (err instanceof RangeError || err instanceof TypeError) {
    return { code: grpc.status.INVALID_ARGUMENT, details: err.message, unexpected: false };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { code: grpc.status.INTERNAL, details: message || "internal error", unexpected: true };
}

/** "DEADLINE_EXCEEDED" for grpc.status.DEADLINE_EXCEEDED. */
export function statusName(code: grpc.status): string {
  return grpc.status[code] ?? String(code);
}
