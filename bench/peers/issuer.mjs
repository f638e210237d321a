// Reference issuer: panva's oidc-provider issuing RS256 JWT access tokens (RFC 9068)
// for the client_credentials grant. Usage: node issuer.mjs --port PORT
import { parseArgs } from 'node:util';

import { calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import Provider, { errors } from 'oidc-provider';

const { values } = parseArgs({ options: { port: { type: 'string', default: '9400' } } });
const port = Number(values.port);
const issuer = `http://127.0.0.1:${port}`;

// A fresh RSA 2048 signing key per run; its RFC 7638 thumbprint is the kid.
const { privateKey } = await generateKeyPair('RS256', { extractable: true, modulusLength: 2048 });
const jwk = await exportJWK(privateKey);
jwk.kid = await calculateJwkThumbprint(jwk);
jwk.alg = 'RS256';
jwk.use = 'sig';

// The one resource server. A request without a `resource` parameter is defaulted to it,
// which is what makes a plain client_credentials request get a JWT rather than an opaque token.
const RESOURCE = 'urn:bench:api';
const RESOURCE_SERVER = {
  scope: 'read',
  audience: 'api',
  accessTokenFormat: 'jwt',
  accessTokenTTL: 900,
  jwt: { sign: { alg: 'RS256' } },
};

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'bench',
    client_secret: 'bench-secret-bench-secret-bench-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
  }],
  jwks: { keys: [jwk] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource) => {
        if (resource !== RESOURCE) throw new errors.InvalidTarget();
        return RESOURCE_SERVER;
      },
    },
  },
});

provider.listen(port, '127.0.0.1', () => {
  console.log(`listening ${issuer}`);
});
