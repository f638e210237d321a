// Reference resource server: node:http + jose, verifying RFC 9068 JWT access tokens.
// Usage: node rs.mjs --port PORT --issuer ISSUER_URL --audience AUD [--jwks-url URL]
import http from 'node:http';
import { parseArgs } from 'node:util';

import { createRemoteJWKSet, jwtVerify } from 'jose';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '9401' },
    issuer: { type: 'string' },
    audience: { type: 'string' },
    'jwks-url': { type: 'string' },
  },
});
if (!values.issuer || !values.audience) {
  console.error('usage: node rs.mjs --port PORT --issuer ISSUER_URL --audience AUD [--jwks-url URL]');
  process.exit(2);
}
const port = Number(values.port);
const { issuer, audience } = values;
const jwksUrl = values['jwks-url'] ?? `${issuer.replace(/\/$/, '')}/.well-known/jwks.json`;

// jose caches the key set and refetches it on an unknown kid (with a cooldown).
const JWKS = createRemoteJWKSet(new URL(jwksUrl));
const verifyOptions = { issuer, audience, typ: 'at+jwt', algorithms: ['RS256'] };

const OK = JSON.stringify({ status: 'ok' });

function send(res, status, body, headers) {
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    ...headers,
  });
  res.end(body);
}

// RFC 6750 section 3: no error code when no credentials were sent, invalid_token otherwise.
function unauthorized(res, description, error) {
  const challenge = error
    ? `Bearer realm="api", error="${error}", error_description="${description.replace(/["\\]/g, '')}"`
    : 'Bearer realm="api"';
  const body = JSON.stringify({ error: error ?? 'invalid_request', error_description: description });
  send(res, 401, body, { 'www-authenticate': challenge });
}

async function usersMe(req, res) {
  const match = /^Bearer +([^ ]+) *$/i.exec(req.headers.authorization ?? '');
  if (!match) return unauthorized(res, 'missing bearer token');
  let payload;
  try {
    ({ payload } = await jwtVerify(match[1], JWKS, verifyOptions));
  } catch (err) {
    return unauthorized(res, err.code ?? 'invalid token', 'invalid_token');
  }
  send(res, 200, JSON.stringify({
    sub: payload.sub,
    username: payload.preferred_username ?? null,
    scope: payload.scope ?? '',
    client_id: payload.client_id ?? null,
    exp: payload.exp,
  }));
}

const server = http.createServer((req, res) => {
  const path = req.url.split('?', 1)[0];
  if (req.method !== 'GET') return send(res, 405, JSON.stringify({ error: 'method_not_allowed' }), { allow: 'GET' });
  if (path === '/ping' || path === '/healthz') return send(res, 200, OK);
  if (path === '/users/me') return usersMe(req, res);
  return send(res, 404, JSON.stringify({ error: 'not_found' }));
});

server.listen(port, '127.0.0.1', () => {
  console.log(`listening http://127.0.0.1:${port}`);
});
