import { parseArgs } from "node:util";
import { checkAuthToken, readAuthTokenFile } from "./auth.js";
import type { ServiceOptions } from "./server.js";

export interface FromEnvOptions {
  /** Environment to read; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Command-line arguments whose flags override the environment; default none (pass process.argv.slice(2)). */
  argv?: string[];
}

const VARS = {
  host: "HOST",
  port: "PORT",
  "tls-cert": "TLS_CERT",
  "tls-key": "TLS_KEY",
  "tls-ca": "TLS_CA",
  "tls-require-client-cert": "TLS_REQUIRE_CLIENT_CERT",
  "max-message-bytes": "MAX_MESSAGE_BYTES",
  "shutdown-grace-ms": "SHUTDOWN_GRACE_MS",
  "auth-token-file": "AUTH_TOKEN_FILE",
} as const;
type Flag = keyof typeof VARS;

function int(value: string, what: string, min: number, max: number): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isInteger(n) || n < min || n > max) throw new RangeError(`${what} must be an integer in [${min}, ${max}], got "${value}"`);
  return n;
}

function bool(value: string, what: string): boolean {
  if (/^(1|true|yes|on)$/i.test(value)) return true;
  if (/^(0|false|no|off|)$/i.test(value)) return false;
  throw new RangeError(`${what} must be true or false, got "${value}"`);
}

/** The variables every Octet service and client reads its bearer token from when no more specific one is set. */
export const SHARED_AUTH_TOKEN_VAR = "OCTET_AUTH_TOKEN";
export const SHARED_AUTH_TOKEN_FILE_VAR = "OCTET_AUTH_TOKEN_FILE";

/**
 * The bearer token from, in this order: `file` (a --auth-token-file flag's value), `<prefix>_AUTH_TOKEN_FILE`,
 * `<prefix>_AUTH_TOKEN` (when a prefix is given), OCTET_AUTH_TOKEN_FILE, OCTET_AUTH_TOKEN. Undefined when none is
 * set (empty values count as unset). Throws RangeError naming the source of a bad or unreadable token. There is
 * no flag with the token itself: a command line is visible to every user of the machine.
 */
export function authTokenFromEnv(opts: { prefix?: string; env?: NodeJS.ProcessEnv; file?: string } = {}): string | undefined {
  const env = opts.env ?? process.env;
  if (opts.file !== undefined && opts.file !== "") return readAuthTokenFile(opts.file, "--auth-token-file");
  const pre = opts.prefix?.toUpperCase().replace(/_+$/, "");
  const sources = pre ? [`${pre}_AUTH_TOKEN_FILE`, `${pre}_AUTH_TOKEN`] : [];
  sources.push(SHARED_AUTH_TOKEN_FILE_VAR, SHARED_AUTH_TOKEN_VAR);
  for (const name of sources) {
    const value = env[name];
    if (value === undefined || value === "") continue;
    return name.endsWith("_FILE") ? readAuthTokenFile(value, name) : checkAuthToken(value, name);
  }
  return undefined;
}

/**
 * Server options from the environment (and optionally flags) of a service binary. With prefix "OCTET_NUMERICS":
 * OCTET_NUMERICS_HOST, _PORT, _TLS_CERT, _TLS_KEY, _TLS_CA, _TLS_REQUIRE_CLIENT_CERT, _MAX_MESSAGE_BYTES,
 * _SHUTDOWN_GRACE_MS; flags --host --port --tls-cert --tls-key --tls-ca --tls-require-client-cert
 * --max-message-bytes --shutdown-grace-ms override them. The bearer token for mutating methods comes from
 * --auth-token-file, OCTET_NUMERICS_AUTH_TOKEN_FILE, OCTET_NUMERICS_AUTH_TOKEN, OCTET_AUTH_TOKEN_FILE or
 * OCTET_AUTH_TOKEN (authTokenFromEnv). Unset values are left out (the server's defaults apply: loopback, no
 * token). TLS is on when a certificate is given. Throws RangeError naming the variable for a bad value.
 */
export function serviceOptionsFromEnv(prefix: string, opts: FromEnvOptions = {}): Omit<ServiceOptions, "name"> {
  const env = opts.env ?? process.env;
  const pre = prefix.toUpperCase().replace(/_+$/, "");
  const { values } = parseArgs({
    args: opts.argv ?? [],
    options: Object.fromEntries(Object.keys(VARS).map((f) => [f, { type: "string" as const }])),
    strict: false,
    allowPositionals: true,
  });
  const get = (flag: Flag): [string, string] | undefined => {
    const v = values[flag];
    if (typeof v === "string") return [v, `--${flag}`];
    const name = `${pre}_${VARS[flag]}`;
    const e = env[name];
    return e !== undefined && e !== "" ? [e, name] : undefined;
  };
  const out: Omit<ServiceOptions, "name"> = {};
  const host = get("host");
  if (host) out.host = host[0];
  const port = get("port");
  if (port) out.port = int(port[0], port[1], 0, 65535);
  const max = get("max-message-bytes");
  if (max) out.maxMessageBytes = int(max[0], max[1], 1, 2 ** 31 - 1);
  const grace = get("shutdown-grace-ms");
  if (grace) out.shutdownGraceMs = int(grace[0], grace[1], 0, 2 ** 31 - 1);
  const flagFile = values["auth-token-file"];
  const authToken = authTokenFromEnv({ prefix: pre, env, file: typeof flagFile === "string" ? flagFile : undefined });
  if (authToken !== undefined) out.authToken = authToken;
  const cert = get("tls-cert");
  const key = get("tls-key");
  const ca = get("tls-ca");
  const mtls = get("tls-require-client-cert");
  if (cert || key) {
    if (!cert || !key) throw new RangeError(`${pre}_TLS_CERT and ${pre}_TLS_KEY must be given together`);
    out.tls = { certFile: cert[0], keyFile: key[0] };
    if (ca) out.tls.caFile = ca[0];
    if (mtls) out.tls.requireClientCert = bool(mtls[0], mtls[1]);
  } else if (ca || mtls) {
    throw new RangeError(`${pre}_TLS_CA and ${pre}_TLS_REQUIRE_CLIENT_CERT need ${pre}_TLS_CERT and ${pre}_TLS_KEY`);
  }
  return out;
}
