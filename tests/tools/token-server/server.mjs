// The OAuth2 token server of the Foundry gateway test bed: oauth2-mock-server's issuer and
// handlers behind an HTTPS server of ours, so that it behaves like the token endpoints Foundry and
// its clients really call (docs/ARCHITECTURE.md, Test layers; the Foundry reference, section 3.1).
//
// What it adds to oauth2-mock-server:
// - the Microsoft Entra path form `POST /{tenant}/oauth2/v2.0/token` (what azure_identity calls
//   with a custom authority host) and `GET /{tenant}/v2.0/.well-known/openid-configuration`,
//   answered by the same handlers as `/token` and the discovery document;
// - the audience from the requested scope (`https://ai.azure.com/.default` gives `aud`
//   `https://ai.azure.com`), `sub`, `appid`, `azp` and `oid` from the client id, `tid` from the
//   tenant of the path;
// - client authentication: only the client ids and secrets of the config file are accepted
//   (form fields or HTTP Basic); anything else gets 401 `invalid_client`, like Entra. Only the
//   client_credentials grant is served;
// - per-client claims: every token of a client listed under `claims` also carries those claims
//   (after, and so over, the ones above). A client standing for a Foundry project's managed
//   identity gets `xms_mirid`, the claim Entra puts into managed-identity tokens and the APIM
//   setup guide's policy checks. oauth2-mock-server itself only offers the `beforeTokenSigning`
//   event for this; a request cannot choose its own claims.
//
// Usage: node server.mjs --config FILE --port PORT --cert PEM --key PEM [--host 127.0.0.1]
//   FILE: {"clients": {"<client id>": "<secret>"},
//          "claims": {"<client id>": {"<claim>": "<value>"}}, "tokenLifetimeSeconds": 3600}
// Prints `token-server listening on https://HOST:PORT` once it serves.

import { readFileSync } from "node:fs";
import { createServer } from "node:https";
import { createRequire } from "node:module";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { pathToFileURL } from "node:url";
import { timingSafeEqual } from "node:crypto";

const { values: args } = parseArgs({
  options: {
    config: { type: "string" },
    port: { type: "string" },
    host: { type: "string", default: "127.0.0.1" },
    cert: { type: "string" },
    key: { type: "string" },
    "node-modules": { type: "string" },
  },
});
for (const name of ["config", "port", "cert", "key", "node-modules"]) {
  if (!args[name]) {
    console.error(`token-server: missing --${name}`);
    process.exit(2);
  }
}

// oauth2-mock-server is installed in a cache outside the repository, not next to this file.
const require = createRequire(join(args["node-modules"], "package.json"));
const { OAuth2Issuer, OAuth2Service } = await import(
  pathToFileURL(require.resolve("oauth2-mock-server")).href
);

const config = JSON.parse(readFileSync(args.config, "utf8"));
const clients = new Map(Object.entries(config.clients ?? {}));
const clientClaims = new Map(Object.entries(config.claims ?? {}));
const tokenLifetime = Number(config.tokenLifetimeSeconds ?? 3600);

const ENTRA_TOKEN = /^\/([^/]+)\/oauth2\/v2\.0\/token\/?$/;
const ENTRA_DISCOVERY = /^\/([^/]+)\/v2\.0\/\.well-known\/openid-configuration\/?$/;

const issuer = new OAuth2Issuer();
await issuer.keys.generate("RS256");
const service = new OAuth2Service(issuer);

function secretMatches(expected, given) {
  const a = Buffer.from(expected, "utf8");
  const b = Buffer.from(String(given ?? ""), "utf8");
  return a.length === b.length && timingSafeEqual(a, b);
}

// The client of a token request: HTTP Basic first, then the form fields.
function clientOf(req) {
  const header = req.headers.authorization ?? "";
  if (header.toLowerCase().startsWith("basic ")) {
    const decoded = Buffer.from(header.slice(6).trim(), "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon >= 0) {
      return {
        id: decodeURIComponent(decoded.slice(0, colon)),
        secret: decodeURIComponent(decoded.slice(colon + 1)),
      };
    }
  }
  const body = req.body ?? {};
  return { id: body.client_id, secret: body.client_secret };
}

// `https://ai.azure.com/.default` -> `https://ai.azure.com`; the first scope decides.
function audienceOf(scope) {
  const first = String(scope ?? "").split(/\s+/).find((s) => s.length > 0) ?? "";
  return first.endsWith("/.default") ? first.slice(0, -"/.default".length) : first;
}

service.on("beforeTokenSigning", (token, req) => {
  const client = clientOf(req);
  const audience = audienceOf(req.body?.scope);
  Object.assign(token.payload, {
    aud: audience || undefined,
    sub: client.id,
    appid: client.id,
    azp: client.id,
    oid: client.id,
    tid: req.foundryTenant ?? "common",
    ver: "2.0",
  });
  Object.assign(token.payload, clientClaims.get(String(client.id ?? "")) ?? {});
  token.payload.exp = token.payload.iat + tokenLifetime;
});

service.on("beforeResponse", (response, req) => {
  const refuse = (statusCode, error, description) => {
    response.statusCode = statusCode;
    response.body = { error, error_description: description };
    console.log(`token-server: refused a token request (${error})`);
  };
  if (req.body?.grant_type !== "client_credentials") {
    return refuse(400, "unsupported_grant_type", "only client_credentials is served");
  }
  const client = clientOf(req);
  const expected = clients.get(String(client.id ?? ""));
  if (expected === undefined || !secretMatches(expected, client.secret)) {
    return refuse(401, "invalid_client", "unknown client or invalid client secret");
  }
  if (!audienceOf(req.body?.scope)) {
    return refuse(400, "invalid_scope", "a scope is required");
  }
  response.body.expires_in = tokenLifetime;
  console.log(`token-server: issued a token to ${client.id} for ${audienceOf(req.body.scope)}`);
});

function sendJson(res, status, body) {
  res.writeHead(status, { "Content-Type": "application/json", "Cache-Control": "no-store" });
  res.end(JSON.stringify(body));
}

const server = createServer(
  { cert: readFileSync(args.cert), key: readFileSync(args.key) },
  (req, res) => {
    const url = new URL(req.url ?? "/", "https://localhost");
    let match = req.method === "POST" && ENTRA_TOKEN.exec(url.pathname);
    if (match) {
      req.foundryTenant = decodeURIComponent(match[1]);
      req.url = `/token${url.search}`;
      return service.requestHandler(req, res);
    }
    match = req.method === "GET" && ENTRA_DISCOVERY.exec(url.pathname);
    if (match) {
      const base = issuer.url;
      const tenant = match[1];
      return sendJson(res, 200, {
        issuer: base,
        token_endpoint: `${base}/${tenant}/oauth2/v2.0/token`,
        authorization_endpoint: `${base}/${tenant}/oauth2/v2.0/authorize`,
        jwks_uri: `${base}/jwks`,
        token_endpoint_auth_methods_supported: ["client_secret_post", "client_secret_basic"],
        grant_types_supported: ["client_credentials"],
        id_token_signing_alg_values_supported: ["RS256"],
        response_types_supported: ["code"],
        subject_types_supported: ["pairwise"],
        tenant_region_scope: null,
      });
    }
    return service.requestHandler(req, res);
  },
);

server.on("error", (err) => {
  console.error(`token-server: ${err.message}`);
  process.exit(1);
});
server.listen(Number(args.port), args.host, () => {
  const { port } = server.address();
  issuer.url = `https://${args.host}:${port}`;
  console.log(`token-server listening on ${issuer.url}`);
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
