// Emits TypeScript grpc-js service definitions for every service in the given .proto files, on top of the
// protobufjs static code in ./protos.js (whose classes do the encoding).
//
// For `service FooService` in package `octet.bar.v1` it emits, inside `export namespace services.bar.v1`
// (the leading `octet.` of the package is dropped; other packages keep their full name):
//   FooServiceName          "octet.bar.v1.FooService"
//   FooServiceHandlers      server handler interface (grpc-js handle*Call types; requests are decoded
//                           message classes, responses the I-interfaces)
//   FooServiceDefinition    grpc.ServiceDefinition<FooServiceHandlers>; method keys are lowerCamelCase
//   FooServiceClient        client interface + constructor (grpc.makeGenericClientConstructor)
import { basename } from "node:path";
import { join } from "node:path";
import protobuf from "protobufjs";

const lcFirst = (s) => s.charAt(0).toLowerCase() + s.slice(1);

/** ".octet.common.v1.EchoRequest" → { cls: "octet.common.v1.EchoRequest", iface: "octet.common.v1.IEchoRequest" } */
function typeRef(fullName) {
  const parts = fullName.replace(/^\./, "").split(".");
  const last = parts.pop();
  return {
    top: parts[0] ?? last,
    cls: [...parts, last].join("."),
    iface: [...parts, "I" + last].join("."),
  };
}

function collectServices(ns, out) {
  for (const nested of ns.nestedArray) {
    if (nested instanceof protobuf.Service) out.push(nested);
    else if (nested instanceof protobuf.Namespace) collectServices(nested, out);
  }
  return out;
}

/**
 * @param {string[]} files absolute paths of .proto files
 * @param {string} includeDir directory that imports are resolved against
 * @returns {{ source: string, count: number, names: string[] }}
 */
export function generateServices(files, includeDir) {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => (target.startsWith("/") ? target : join(includeDir, target));
  root.loadSync(files, { keepCase: true, alternateCommentMode: true });
  root.resolveAll();

  const services = collectServices(root, []).sort((a, b) => a.fullName.localeCompare(b.fullName));
  const tops = new Set();
  /** @type {Map<string, string[]>} TS namespace path → code blocks */
  const byNamespace = new Map();

  for (const svc of services) {
    const pkg = svc.parent.fullName.replace(/^\./, "");
    const fullName = svc.fullName.replace(/^\./, "");
    const nsPath = pkg.split(".").filter(Boolean);
    if (nsPath[0] === "octet" && nsPath.length > 1) nsPath.shift();
    const key = nsPath.join(".");
    const name = svc.name;
    const handlers = [];
    const defs = [];
    const client = [];

    for (const m of svc.methodsArray) {
      const req = typeRef(m.resolvedRequestType.fullName);
      const res = typeRef(m.resolvedResponseType.fullName);
      tops.add(req.top);
      tops.add(res.top);
      const key = lcFirst(m.name);
      const path = `/${fullName}/${m.name}`;
      const rs = Boolean(m.requestStream);
      const ss = Boolean(m.responseStream);
      const kind = rs ? (ss ? "handleBidiStreamingCall" : "handleClientStreamingCall") : ss ? "handleServerStreamingCall" : "handleUnaryCall";
      const doc = m.comment ? `    /** ${m.comment.replace(/\*\//g, "* /").split("\n").join("\n     * ")} */\n` : "";
      handlers.push(`${doc}    ${key}: grpc.${kind}<${req.cls}, ${res.iface}>;`);
      defs.push(
        `    ${key}: {\n` +
          `      path: ${JSON.stringify(path)},\n` +
          `      requestStream: ${rs},\n` +
          `      responseStream: ${ss},\n` +
          `      requestSerialize: serialize(${req.cls}),\n` +
          `      requestDeserialize: deserialize(${req.cls}),\n` +
          `      responseSerialize: serialize(${res.cls}),\n` +
          `      responseDeserialize: deserialize(${res.cls}),\n` +
          `      originalName: ${JSON.stringify(key)},\n` +
          `    },`,
      );
      const I = req.iface;
      const O = res.cls;
      if (!rs && !ss) {
        client.push(
          `${doc}    ${key}(request: ${I}, callback: grpc.requestCallback<${O}>): grpc.ClientUnaryCall;\n` +
            `    ${key}(request: ${I}, metadata: grpc.Metadata, callback: grpc.requestCallback<${O}>): grpc.ClientUnaryCall;\n` +
            `    ${key}(request: ${I}, options: Partial<grpc.CallOptions>, callback: grpc.requestCallback<${O}>): grpc.ClientUnaryCall;\n` +
            `    ${key}(request: ${I}, metadata: grpc.Metadata, options: Partial<grpc.CallOptions>, callback: grpc.requestCallback<${O}>): grpc.ClientUnaryCall;`,
        );
      } else if (!rs && ss) {
        client.push(
          `${doc}    ${key}(request: ${I}, options?: Partial<grpc.CallOptions>): grpc.ClientReadableStream<${O}>;\n` +
            `    ${key}(request: ${I}, metadata?: grpc.Metadata, options?: Partial<grpc.CallOptions>): grpc.ClientReadableStream<${O}>;`,
        );
      } else if (rs && !ss) {
        client.push(
          `${doc}    ${key}(callback: grpc.requestCallback<${O}>): grpc.ClientWritableStream<${I}>;\n` +
            `    ${key}(metadata: grpc.Metadata, callback: grpc.requestCallback<${O}>): grpc.ClientWritableStream<${I}>;\n` +
            `    ${key}(options: Partial<grpc.CallOptions>, callback: grpc.requestCallback<${O}>): grpc.ClientWritableStream<${I}>;\n` +
            `    ${key}(metadata: grpc.Metadata, options: Partial<grpc.CallOptions>, callback: grpc.requestCallback<${O}>): grpc.ClientWritableStream<${I}>;`,
        );
      } else {
        client.push(
          `${doc}    ${key}(options?: Partial<grpc.CallOptions>): grpc.ClientDuplexStream<${I}, ${O}>;\n` +
            `    ${key}(metadata?: grpc.Metadata, options?: Partial<grpc.CallOptions>): grpc.ClientDuplexStream<${I}, ${O}>;`,
        );
      }
    }

    const svcDoc = svc.comment ? `  /** ${svc.comment.replace(/\*\//g, "* /").split("\n").join("\n   * ")} */\n` : "";
    const block =
      `  /** Full name of ${name}, for health checking and reflection. */\n` +
      `  export const ${name}Name = ${JSON.stringify(fullName)};\n\n` +
      `${svcDoc}  export interface ${name}Handlers extends grpc.UntypedServiceImplementation {\n${handlers.join("\n")}\n  }\n\n` +
      `  /** grpc-js definition of ${fullName} (from ${basename(svc.filename ?? "")}). */\n` +
      `  export const ${name}Definition: grpc.ServiceDefinition<${name}Handlers> = {\n${defs.join("\n")}\n  };\n\n` +
      `  export interface ${name}Client extends grpc.Client {\n${client.join("\n")}\n  }\n\n` +
      `  export const ${name}Client = grpc.makeGenericClientConstructor(${name}Definition, ${JSON.stringify(name)}) as unknown as ClientConstructor<${name}Client>;\n`;
    if (!byNamespace.has(key)) byNamespace.set(key, []);
    byNamespace.get(key).push(block);
  }

  const namespaces = [...byNamespace.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([ns, blocks]) => {
      const body = blocks.join("\n");
      const open = ns.split(".").map((p) => `export namespace ${p} {`).join(" ");
      const close = ns.split(".").map(() => "}").join(" ");
      return `${open}\n${body}${close}`;
    });

  const source = `// Generated by scripts/gen-services.mjs from proto/*.proto. Do not edit.
/* eslint-disable */
import * as grpc from "@grpc/grpc-js";
import { ${[...tops].sort().join(", ")} } from "./protos.js";

/** A protobufjs static message class, as far as the codecs need it. */
interface MessageClass<T, I> {
  encode(message: I): { finish(): Uint8Array };
  decode(data: Uint8Array): T;
}

function serialize<T, I>(type: MessageClass<T, I>): (message: I) => Buffer {
  return (message) => {
    const bytes = type.encode(message).finish();
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

function deserialize<T, I>(type: MessageClass<T, I>): (data: Buffer) => T {
  return (data) => type.decode(data);
}

/** Typed form of the constructor grpc.makeGenericClientConstructor returns. */
export interface ClientConstructor<C extends grpc.Client> {
  new (address: string, credentials: grpc.ChannelCredentials, options?: Partial<grpc.ClientOptions>): C;
  service: grpc.ServiceDefinition;
  serviceName: string;
}

/** Full names of every generated service. */
export const serviceNames: readonly string[] = ${JSON.stringify(services.map((s) => s.fullName.replace(/^\./, "")))};

export namespace services {
${namespaces.join("\n\n")}
}
`;
  return { source, count: services.length, names: services.map((s) => s.fullName.replace(/^\./, "")) };
}
