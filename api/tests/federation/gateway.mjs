// A real federation gateway in front of the subgraph (issue 40): Apollo's own `@apollo/gateway`
// on `@apollo/server`, over sipline's running subgraph and a second small subgraph ("rewards",
// `@apollo/subgraph`) that extends `User`, sent the queries a client app sends. Its answers
// must equal what sipline's REST routes answer, the caller's token must pass through to
// sipline, another user's data must be refused, and the cross-subgraph field must resolve.
//
//   node gateway.mjs SIPLINE_BASE_URL SIPLINE_SDL_FILE
//
// with SIPLINE_TOKEN (a user's JWT), SIPLINE_OTHER_USER (another user's id) and
// SIPLINE_SCHEME (a scheme open for purchases) in the environment. Exits non-zero on the
// first difference.
import { readFileSync } from "node:fs";
import { ApolloServer } from "@apollo/server";
import { startStandaloneServer } from "@apollo/server/standalone";
import { ApolloGateway, RemoteGraphQLDataSource } from "@apollo/gateway";
import { buildSubgraphSchema } from "@apollo/subgraph";
import { composeServices } from "@apollo/composition";
import { parse } from "graphql";

const [base, sdlFile] = process.argv.slice(2);
const token = process.env.SIPLINE_TOKEN;
const otherUser = process.env.SIPLINE_OTHER_USER;
const scheme = Number(process.env.SIPLINE_SCHEME);
const fail = (message) => {
  console.error(`FAIL: ${message}`);
  process.exit(1);
};

// Another team's subgraph: reward points per user, keyed by sipline's user id.
const rewardsTypeDefs = parse(`
  extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])
  type User @key(fields: "id") {
    id: ID!
    rewardPoints: Int!
  }
  type Query {
    topSavers: [User!]!
  }
`);
const rewards = new ApolloServer({
  schema: buildSubgraphSchema({
    typeDefs: rewardsTypeDefs,
    resolvers: {
      Query: { topSavers: () => [] },
      User: { __resolveReference: (user) => ({ id: user.id, rewardPoints: 10 * Number(user.id) }) },
    },
  }),
});
const { url: rewardsUrl } = await startStandaloneServer(rewards, { listen: { port: 0, host: "127.0.0.1" } });

// The supergraph composed by Apollo's composition from both subgraphs' SDL, as a managed
// federation build step would.
const composed = composeServices([
  { name: "sipline", url: `${base}/graphql`, typeDefs: parse(readFileSync(sdlFile, "utf8")) },
  { name: "rewards", url: rewardsUrl, typeDefs: rewardsTypeDefs },
]);
if (composed.errors?.length) fail(composed.errors.map((e) => e.message).join("; "));

// The caller's Authorization header goes on to the subgraphs: sipline checks the token itself.
class WithCallersToken extends RemoteGraphQLDataSource {
  willSendRequest({ request, context }) {
    if (context.authorization) request.http.headers.set("authorization", context.authorization);
  }
}
const gateway = new ApolloGateway({
  supergraphSdl: composed.supergraphSdl,
  buildService: ({ url }) => new WithCallersToken({ url }),
});
const server = new ApolloServer({ gateway });
const { url: gatewayUrl } = await startStandaloneServer(server, {
  listen: { port: 0, host: "127.0.0.1" },
  context: async ({ req }) => ({ authorization: req.headers.authorization }),
});
console.log(`gateway at ${gatewayUrl} over sipline (${base}) and rewards (${rewardsUrl})`);

async function viaGateway(query, variables = {}, bearer = token) {
  const response = await fetch(gatewayUrl, {
    method: "POST",
    headers: { "content-type": "application/json", ...(bearer ? { authorization: `Bearer ${bearer}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  return response.json();
}
async function rest(path) {
  const response = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}` } });
  if (!response.ok) fail(`REST ${path}: ${response.status}`);
  return response.json();
}
const same = (what, a, b) => {
  if (JSON.stringify(a) !== JSON.stringify(b)) fail(`${what}: gateway ${JSON.stringify(a)} != REST ${JSON.stringify(b)}`);
};

// 1. The app's home screen: the portfolio with its lines, SIPs, orders, and a field from the
//    other subgraph on the same user.
const home = await viaGateway(`{ me { id rewardPoints
  portfolio { asOf invested currentValue lines { schemeCode units currentValue } }
  sips { sips { sipId schemeCode amount status } }
  orders { orders { orderId kind status } } } }`);
if (home.errors) fail(`home: ${JSON.stringify(home.errors)}`);
const me = home.data.me;
const portfolio = await rest("/v1/users/me/portfolio");
same("portfolio", [me.portfolio.asOf, me.portfolio.invested, me.portfolio.currentValue],
  [portfolio.as_of, portfolio.invested, portfolio.current_value]);
same("portfolio lines", me.portfolio.lines.map((l) => [l.schemeCode, l.units, l.currentValue]),
  portfolio.lines.map((l) => [l.scheme_code, l.units, l.current_value]));
if (me.portfolio.lines.length === 0) fail("the user has no lines: nothing compared");
const sips = await rest("/v1/users/me/sips?limit=50");
same("sips", me.sips.sips.map((s) => [s.sipId, s.schemeCode, s.amount, s.status]),
  sips.sips.map((s) => [s.sip_id, s.scheme_code, s.amount, s.status]));
same("reward points (the rewards subgraph, joined on the user's id)", me.rewardPoints, 10 * Number(me.id));
console.log(`home: portfolio of ${me.portfolio.lines.length} lines, ${me.sips.sips.length} SIPs, ${me.rewardPoints} reward points: equal to REST`);

// 2. A mutation with an idempotency key: placed once, replayed with the same answer.
const place = `mutation($input: NewOrder!, $key: String!) {
  placeOrder(input: $input, idempotencyKey: $key) { orderId kind status amount navDate } }`;
const input = { kind: "purchase", schemeCode: scheme, amount: "2500" };
const first = await viaGateway(place, { input, key: "gateway-order-1" });
if (first.errors) fail(`placeOrder: ${JSON.stringify(first.errors)}`);
const again = await viaGateway(place, { input, key: "gateway-order-1" });
same("the replayed order", again.data?.placeOrder, first.data.placeOrder);
const placed = await rest(`/v1/users/me/orders/${first.data.placeOrder.orderId}`);
same("the order", [first.data.placeOrder.kind, first.data.placeOrder.amount, first.data.placeOrder.navDate],
  [placed.kind, placed.amount, placed.nav_date]);
const orders = await rest("/v1/users/me/orders");
if (orders.orders.filter((o) => o.order_id === first.data.placeOrder.orderId).length !== 1) fail("the replay placed a second order");
console.log(`placeOrder: order ${first.data.placeOrder.orderId} placed once, replayed by its key: equal to REST`);

// 3. Another user's data is refused, and no token reaches nothing.
const other = await viaGateway(`query($id: ID!) { user(id: $id) { portfolio { invested } } }`, { id: otherUser });
if (other.data?.user !== null) fail(`another user's data: ${JSON.stringify(other)}`);
const anonymous = await viaGateway(`{ me { id } }`, {}, null);
if (!anonymous.errors || anonymous.data?.me) fail(`no token: ${JSON.stringify(anonymous)}`);
console.log("another user's portfolio: null; no token: an error");

await server.stop();
await rewards.stop();
console.log("federation gateway: ok");
