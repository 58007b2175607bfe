// Errors with a status the service maps onto gRPC codes. Bad input is RangeError/TypeError (INVALID_ARGUMENT).

export type CheckpointErrorCode =
  | "NOT_FOUND"
  | "ALREADY_EXISTS"
  | "FAILED_PRECONDITION"
  | "RESOURCE_EXHAUSTED"
  | "PERMISSION_DENIED"
  | "DATA_LOSS"
  | "ABORTED"
  | "UNAVAILABLE"
  | "INTERNAL";

export class CheckpointError extends Error {
  override readonly name: string = "CheckpointError";
  constructor(
    readonly code: CheckpointErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A stored checkpoint failed verification: a shard's checksum, size or header, or the manifest itself. */
export class CorruptCheckpointError extends CheckpointError {
  override readonly name = "CorruptCheckpointError";
  constructor(
    readonly run: string,
    readonly step: number,
    /** The file that failed: a shard name or "manifest.json". */
    readonly object: string,
    readonly reason: string,
  ) {
    super("DATA_LOSS", `checkpoint ${run}@${step} is corrupted: ${object}: ${reason}`);
  }
}

/** Maps a filesystem error to a clear status; other errors pass through unchanged. */
export function fsError(e: unknown, what: string): unknown {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case "ENOSPC":
    case "EDQUOT":
      return new CheckpointError("RESOURCE_EXHAUSTED", `disk full while ${what} (${code})`, { cause: e });
    case "EACCES":
    case "EPERM":
    case "EROFS":
      return new CheckpointError("PERMISSION_DENIED", `permission denied while ${what} (${code})`, { cause: e });
    case "EMFILE":
    case "ENFILE":
      return new CheckpointError("RESOURCE_EXHAUSTED", `too many open files while ${what} (${code})`, { cause: e });
    case "EIO":
      return new CheckpointError("DATA_LOSS", `I/O error while ${what} (${code})`, { cause: e });
    default:
      return e;
  }
}
