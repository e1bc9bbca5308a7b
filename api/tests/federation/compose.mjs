// Composes sipline's subgraph SDL (argv[2]) with a small second subgraph that extends `User`
// into a supergraph, with Apollo Federation's own composition library: exits non-zero with
// the composition errors when the gateway could not compose them.
import { readFileSync } from "node:fs";
import { composeServices } from "@apollo/composition";
import { parse } from "graphql";

const sipline = readFileSync(process.argv[2], "utf8");
// Another team's subgraph: rewards per user, keyed by the same id.
const rewards = `
  extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])
  type User @key(fields: "id") {
    id: ID!
    rewardPoints: Int!
  }
  type Query {
    topSavers: [User!]!
  }
`;
const result = composeServices([
  { name: "sipline", url: "http://sipline-api/graphql", typeDefs: parse(sipline) },
  { name: "rewards", url: "http://rewards/graphql", typeDefs: parse(rewards) },
]);
if (result.errors && result.errors.length > 0) {
  for (const error of result.errors) console.error(`composition error: ${error.message}`);
  process.exit(1);
}
const supergraph = result.supergraphSdl;
for (const expected of ["portfolio: Portfolio", "rewardPoints: Int!", "createSip(", "me: User!"]) {
  if (!supergraph.includes(expected)) {
    console.error(`the supergraph lacks ${expected}`);
    process.exit(1);
  }
}
const hints = (result.hints || []).length;
console.log(`composed: ${supergraph.split("\n").length} lines of supergraph SDL, 2 subgraphs, ${hints} hints`);
