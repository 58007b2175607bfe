// The gRPC NumericsService (proto/numerics.proto) on the shared @octet/proto scaffolding. RangeErrors from
// validation or from the library become INVALID_ARGUMENT through the handler wrappers.

import { OctetServer, bidiStreaming, octet, resourceExhausted, services, unary, type CallContext, type ServiceOptions } from "@octet/proto";
import {
  ByteAssembler,
  TooLargeError,
  dequantizeBytes,
  parseQuantizeHeader,
  parseQuantizedHeader,
  quantizeBytes,
  slices,
  type TensorLimits,
} from "./tensors.js";

type Handlers = services.numerics.v1.NumericsServiceHandlers;
const { NumericsServiceDefinition, NumericsServiceName } = services.numerics.v1;

export interface NumericsServiceOptions {
  /** Largest tensor (rows · cols) accepted; default 2^28 (1 GiB of float32). */
  maxElements?: number;
  /** Payload bytes per streamed reply message; default 1 MiB (must stay under the message size limit). */
  chunkBytes?: number;
}

function limitsError(err: unknown): never {
  if (err instanceof TooLargeError) throw resourceExhausted(err.message);
  throw err;
}

function checkAborted(ctx: CallContext): void {
  if (ctx.signal.aborted) throw ctx.signal.reason;
}

export function numericsHandlers(opts: NumericsServiceOptions = {}): Handlers {
  const limits: TensorLimits = { maxElements: opts.maxElements ?? 2 ** 28 };
  const chunkBytes = opts.chunkBytes ?? 1 << 20;

  return {
    quantize: unary((req: octet.numerics.v1.QuantizeRequest) => {
      let job;
      try {
        job = parseQuantizeHeader(req.header, limits);
      } catch (err) {
        limitsError(err);
      }
      return quantizeBytes(job, req.data);
    }),

    dequantize: unary((req: octet.numerics.v1.DequantizeRequest) => {
      let job;
      try {
        job = parseQuantizedHeader(req.header, limits);
      } catch (err) {
        limitsError(err);
      }
      return { shape: job.shape, data: dequantizeBytes(job, req.data, req.scales) };
    }),

    quantizeStream: bidiStreaming(async (requests: AsyncIterable<octet.numerics.v1.QuantizeChunk>, ctx, write) => {
      let job: ReturnType<typeof parseQuantizeHeader> | undefined;
      let payload: ByteAssembler | undefined;
      for await (const chunk of requests) {
        if (!job) {
          try {
            job = parseQuantizeHeader(chunk.header, limits);
          } catch (err) {
            limitsError(err);
          }
          payload = new ByteAssembler("data", job.inputBytes);
        } else if (chunk.header) {
          throw new RangeError("header may only be sent in the first message");
        }
        payload!.append(chunk.data);
      }
      if (!job || !payload) throw new RangeError("the stream ended before a header arrived");
      const result = quantizeBytes(job, payload.finish());
      checkAborted(ctx);
      await write({ header: result.header });
      for (const data of slices(result.data, chunkBytes)) await write({ data });
      for (const scales of slices(result.scales, chunkBytes)) await write({ scales });
    }),

    dequantizeStream: bidiStreaming(async (requests: AsyncIterable<octet.numerics.v1.QuantizedChunk>, ctx, write) => {
      let job: ReturnType<typeof parseQuantizedHeader> | undefined;
      let codes: ByteAssembler | undefined;
      let scales: ByteAssembler | undefined;
      for await (const chunk of requests) {
        if (!job) {
          try {
            job = parseQuantizedHeader(chunk.header, limits);
          } catch (err) {
            limitsError(err);
          }
          codes = new ByteAssembler("data", job.dataBytes);
          scales = new ByteAssembler("scales", job.scaleBytes);
        } else if (chunk.header) {
          throw new RangeError("header may only be sent in the first message");
        }
        codes!.append(chunk.data);
        scales!.append(chunk.scales);
      }
      if (!job || !codes || !scales) throw new RangeError("the stream ended before a header arrived");
      const values = dequantizeBytes(job, codes.finish(), scales.finish());
      checkAborted(ctx);
      let first = true;
      for (const data of slices(values, chunkBytes)) {
        await write(first ? { shape: job.shape, data } : { data });
        first = false;
      }
    }),
  };
}

/** The service's methods, all read-only: it holds no state for a token to protect. */
export const NUMERICS_READ_ONLY_METHODS = ["Quantize", "Dequantize", "QuantizeStream", "DequantizeStream"] as const;

/** Start a NumericsService server; resolves once it listens. */
export async function startNumericsServer(
  options: Omit<ServiceOptions, "name"> & { service?: NumericsServiceOptions } = {},
): Promise<{ server: OctetServer; port: number; address: string }> {
  const { service, ...serverOptions } = options;
  const server = new OctetServer({ name: "octet-numerics", ...serverOptions });
  // Every method is a pure function of its request (the service keeps no state), so none needs the bearer token.
  server.addService(NumericsServiceDefinition, numericsHandlers(service), NumericsServiceName, { readOnly: NUMERICS_READ_ONLY_METHODS });
  const { port, address } = await server.start();
  return { server, port, address };
}
