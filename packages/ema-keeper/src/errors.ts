// Library errors. They extend RangeError / TypeError (bad input is a RangeError or TypeError everywhere in
// Octet) and carry the gRPC status name that the service answers with.

export type EmaErrorCode =
  | "INVALID_ARGUMENT"
  | "NOT_FOUND"
  | "ALREADY_EXISTS"
  | "FAILED_PRECONDITION"
  | "RESOURCE_EXHAUSTED"
  | "ABORTED";

/** Bad input that is not a type error: wrong shape, byte count, dtype, NaN, bad step... */
export class EmaRangeError extends RangeError {
  readonly code: EmaErrorCode;
  constructor(message: string, code: EmaErrorCode = "INVALID_ARGUMENT") {
    super(message);
    this.name = "EmaRangeError";
    this.code = code;
  }
}

/** Unknown run or tensor. */
export class EmaNotFoundError extends EmaRangeError {
  constructor(message: string) {
    super(message, "NOT_FOUND");
    this.name = "EmaNotFoundError";
  }
}

/** A push for a step older than one already complete (applied or queued). */
export class StaleStepError extends EmaRangeError {
  constructor(message: string) {
    super(message, "FAILED_PRECONDITION");
    this.name = "StaleStepError";
  }
}

export function errorCode(err: unknown): EmaErrorCode | undefined {
  if (err instanceof EmaRangeError) return err.code;
  if (err instanceof RangeError || err instanceof TypeError) return "INVALID_ARGUMENT";
  return undefined;
}
