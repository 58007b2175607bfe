// Bearer-token authentication of the mutating RPCs. A service configured with a token (ServiceOptions.authToken)
// answers UNAUTHENTICATED to any call of a method it did not declare read-only unless the call carries the
// metadata `authorization: Bearer <token>`; clients send it with ClientOptions.authToken. Health, reflection and
// the read-only methods stay open. Without TLS the token crosses the network in clear: it keeps out whoever can
// merely reach the port, not whoever can read the traffic (turn TLS on for that).

import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";

/** The metadata key the token travels under (lowercase, as HTTP/2 requires). */
export const AUTHORIZATION_KEY = "authorization";
export const MIN_AUTH_TOKEN_LENGTH = 16;
export const MAX_AUTH_TOKEN_LENGTH = 4096;

/**
 * Returns the token when it is 16 to 4096 visible ASCII characters (no spaces or control characters, so it fits
 * a header as is); throws a RangeError naming `source` (the flag, variable or option it came from) otherwise.
 * The message never quotes the token.
 */
export function checkAuthToken(token: unknown, source: string): string {
  if (typeof token !== "string") throw new TypeError(`${source} must be a string`);
  if (token.length < MIN_AUTH_TOKEN_LENGTH || token.length > MAX_AUTH_TOKEN_LENGTH) {
    throw new RangeError(`${source} must be ${MIN_AUTH_TOKEN_LENGTH} to ${MAX_AUTH_TOKEN_LENGTH} characters long, got ${token.length} (generate one with: openssl rand -hex 32)`);
  }
  if (!/^[\x21-\x7e]+$/.test(token)) throw new RangeError(`${source} must be visible ASCII characters only (no spaces or control characters)`);
  return token;
}

/** Reads a token file (trailing newline and surrounding whitespace dropped) and checks the token. */
export function readAuthTokenFile(path: string, source: string): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new RangeError(`${source}: cannot read the token file ${JSON.stringify(path)}: ${(err as Error).message}`);
  }
  return checkAuthToken(text.trim(), `${source} (${path})`);
}

export type BearerVerdict = "ok" | "missing" | "wrong";

/** Compares a call's bearer token with the configured one in constant time (over SHA-256 digests of both). */
export class BearerCheck {
  private readonly digest: Buffer;

  constructor(token: string) {
    this.digest = createHash("sha256").update(checkAuthToken(token, "authToken")).digest();
  }

  verdict(metadata: grpc.Metadata): BearerVerdict {
    const values = metadata.get(AUTHORIZATION_KEY);
    if (values.length === 0) return "missing";
    if (values.length > 1) return "wrong";
    const value = typeof values[0] === "string" ? values[0] : values[0].toString("utf8");
    const m = /^Bearer (.+)$/i.exec(value);
    if (!m) return "wrong";
    const given = createHash("sha256").update(m[1]).digest();
    return timingSafeEqual(given, this.digest) ? "ok" : "wrong";
  }
}

/** A client interceptor that adds `authorization: Bearer <token>` to every call's metadata. */
export function bearerInterceptor(token: string): grpc.Interceptor {
  const value = `Bearer ${checkAuthToken(token, "authToken")}`;
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set(AUTHORIZATION_KEY, value);
        next(metadata, listener);
      },
    });
}
