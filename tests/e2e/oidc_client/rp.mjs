// A relying party built on panva's openid-client, as a two-step CLI for the end-to-end tests
// (tests/e2e/test_oidc_clients.py). Each step prints one JSON object on stdout; a failure
// prints {"error": ..., "code": ..., "message": ...} on stderr and exits with status 1.
//
//   node rp.mjs start  --issuer URL --client-id ID [--client-secret S] --redirect-uri URI
//                      --scope "openid profile email"
//     -> {authorization_url, code_verifier, state, nonce}
//   node rp.mjs finish --issuer URL --client-id ID [--client-secret S] [--redirect-uri URI]
//                      --callback-url URL --code-verifier V --state S --nonce N
//     -> {claims, userinfo, access_token}
//
// The issuer of the tests is plain http on loopback, hence allowInsecureRequests.

import { parseArgs } from "node:util";
import * as client from "openid-client";

const OPTIONS = {
  issuer: { type: "string" },
  "client-id": { type: "string" },
  "client-secret": { type: "string" },
  "redirect-uri": { type: "string" },
  scope: { type: "string", default: "openid" },
  "callback-url": { type: "string" },
  "code-verifier": { type: "string" },
  state: { type: "string" },
  nonce: { type: "string" },
};

function required(values, ...names) {
  for (const name of names) {
    if (!values[name]) throw new Error(`--${name} is required`);
  }
}

async function configuration(values) {
  required(values, "issuer", "client-id");
  const secret = values["client-secret"];
  // A public client authenticates with PKCE alone; a confidential one with HTTP Basic.
  const auth = secret ? client.ClientSecretBasic(secret) : client.None();
  return client.discovery(new URL(values.issuer), values["client-id"], secret, auth, {
    execute: [client.allowInsecureRequests],
  });
}

async function start(values) {
  required(values, "redirect-uri");
  const config = await configuration(values);
  const codeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: values["redirect-uri"],
    scope: values.scope,
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: "S256",
    state,
    nonce,
  });
  return { authorization_url: url.href, code_verifier: codeVerifier, state, nonce };
}

async function finish(values) {
  required(values, "callback-url", "code-verifier", "state", "nonce");
  const config = await configuration(values);
  // Checks the code response (state, RFC 9207 iss), exchanges the code with the verifier
  // (the redirect_uri sent is the callback URL without its query) and validates the ID
  // token: signature against the JWKS, iss, aud, exp, nonce.
  const tokens = await client.authorizationCodeGrant(
    config,
    new URL(values["callback-url"]),
    {
      pkceCodeVerifier: values["code-verifier"],
      expectedState: values.state,
      expectedNonce: values.nonce,
      idTokenExpected: true,
    },
  );
  const claims = tokens.claims();
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  return { claims, userinfo, access_token: tokens.access_token };
}

const STEPS = { start, finish };

async function main(argv) {
  const { values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true });
  const step = STEPS[positionals[0]];
  if (positionals.length !== 1 || !step) {
    throw new Error(`usage: node rp.mjs start|finish --issuer URL --client-id ID ...`);
  }
  return step(values);
}

try {
  process.stdout.write(`${JSON.stringify(await main(process.argv.slice(2)))}\n`);
} catch (error) {
  const report = { error: error?.name, code: error?.code, message: error?.message };
  if (error?.cause !== undefined) report.cause = String(error.cause?.message ?? error.cause);
  process.stderr.write(`${JSON.stringify(report)}\n`);
  process.exitCode = 1;
}
