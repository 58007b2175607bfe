// An implementation of octet.common.v1.EchoService for tests and smoke checks of the scaffolding.
import { bidiStreaming, unary } from "../handlers.js";
import { notFound } from "../errors.js";
import type { services } from "../gen/services.js";

export interface EchoObservations {
  /** One entry per Slow call that ended: whether its ctx.signal had aborted, and the abort reason's code. */
  slow: Array<{ aborted: boolean; reasonCode?: number }>;
}

export function echoHandlers(observed: EchoObservations = { slow: [] }): services.common.v1.EchoServiceHandlers {
  return {
    echo: unary(async (req) => {
      if (req.text === "range-error") throw new RangeError("shape must have two dimensions");
      if (req.text === "type-error") throw new TypeError("format must be a string");
      if (req.text === "not-found") throw notFound("no tensor named x");
      if (req.text === "boom") throw new Error("unexpected failure");
      return { text: req.text, payload: req.payload };
    }),
    echoStream: bidiStreaming(async (reqs, _ctx, write) => {
      let sequence = 0;
      for await (const req of reqs) {
        if (req.text === "range-error") throw new RangeError("bad chunk");
        await write({ text: req.text, payload: req.payload, sequence: sequence++ });
      }
    }),
    slow: unary(
      (req, ctx) =>
        new Promise((resolve, reject) => {
          const timer = setTimeout(() => {
            observed.slow.push({ aborted: ctx.signal.aborted });
            resolve({ text: req.text });
          }, req.delayMs);
          ctx.signal.addEventListener("abort", () => {
            clearTimeout(timer);
            observed.slow.push({ aborted: true, reasonCode: (ctx.signal.reason as { code?: number }).code });
            reject(ctx.signal.reason);
          });
        }),
    ),
  };
}
