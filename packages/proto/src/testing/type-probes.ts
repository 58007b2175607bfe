// Compile-time checks of the generated and helper types; `npm run typecheck -w @octet/proto` fails if they regress.
import type { UnaryMethod, UnaryRequest, UnaryResponse } from "../client.js";
import type { octet } from "../gen/protos.js";
import type { services } from "../gen/services.js";
type C = services.common.v1.EchoServiceClient;
type Eq<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const a: Eq<UnaryMethod<C>, "echo" | "slow"> = true;
const b: Eq<UnaryRequest<C, "slow">, octet.common.v1.ISlowRequest> = true;
const c: Eq<UnaryResponse<C, "echo">, octet.common.v1.EchoReply> = true;
void [a, b, c];
