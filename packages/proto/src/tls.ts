import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";

/** Server TLS: certificate and key (PEM, inline or from files); a CA to verify client certificates with. */
export interface ServerTlsOptions {
  certFile?: string;
  keyFile?: string;
  caFile?: string;
  cert?: Buffer;
  key?: Buffer;
  ca?: Buffer;
  /** Require and verify client certificates against `ca` (mutual TLS). Default false. */
  requireClientCert?: boolean;
}

/** Client TLS: the CA to trust (system roots when absent) and, for mutual TLS, a client certificate and key. */
export interface ClientTlsOptions {
  caFile?: string;
  ca?: Buffer;
  certFile?: string;
  keyFile?: string;
  cert?: Buffer;
  key?: Buffer;
}

function pem(inline: Buffer | undefined, file: string | undefined): Buffer | undefined {
  if (inline) return inline;
  if (file) return readFileSync(file);
  return undefined;
}

export function serverCredentials(tls: ServerTlsOptions | undefined): grpc.ServerCredentials {
  if (!tls) return grpc.ServerCredentials.createInsecure();
  const cert = pem(tls.cert, tls.certFile);
  const key = pem(tls.key, tls.keyFile);
  const ca = pem(tls.ca, tls.caFile);
  if (!cert || !key) throw new TypeError("tls needs a certificate and a key (cert/certFile and key/keyFile)");
  if (tls.requireClientCert && !ca) throw new TypeError("tls.requireClientCert needs a CA (ca/caFile) to verify clients");
  return grpc.ServerCredentials.createSsl(ca ?? null, [{ cert_chain: cert, private_key: key }], tls.requireClientCert ?? false);
}

/** Channel credentials for a TLS client (`clientCredentials({ caFile })`, or with certFile/keyFile for mTLS). */
export function clientCredentials(tls: ClientTlsOptions = {}): grpc.ChannelCredentials {
  const cert = pem(tls.cert, tls.certFile);
  const key = pem(tls.key, tls.keyFile);
  if (Boolean(cert) !== Boolean(key)) throw new TypeError("a client certificate needs its key, and a key its certificate");
  return grpc.credentials.createSsl(pem(tls.ca, tls.caFile) ?? null, key ?? null, cert ?? null);
}
