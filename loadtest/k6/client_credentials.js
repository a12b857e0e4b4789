// k6 scenario: the client-credentials grant (RFC 6749 §4.4) against a Valet
// issuer, for users who run k6 on their own load machines. Valet does not
// ship or install k6; loadtest/k6_test.go compiles and dry-runs this file
// with goja so it cannot rot.
//
//   k6 run -e TOKEN_URL=https://auth.example.com/token \
//          -e CLIENT_ID=svc-reports -e CLIENT_SECRET=vcs_... \
//          -e RESOURCE=https://api.example.com/ -e SCOPE=read \
//          -e VUS=32 -e DURATION=60s loadtest/k6/client_credentials.js
//
// AUTH=post sends the credentials in the body (client_secret_post) instead of
// HTTP Basic (client_secret_basic). Thresholds encode Valet's goals: fewer
// than 1% failures and p99 under 5 ms at the issuer.

import http from 'k6/http';
import { check } from 'k6';
import encoding from 'k6/encoding';

const tokenURL = __ENV.TOKEN_URL || 'http://127.0.0.1:18080/token';
const clientID = __ENV.CLIENT_ID || 'loadtest';
const clientSecret = __ENV.CLIENT_SECRET || '';
const resource = __ENV.RESOURCE || '';
const scope = __ENV.SCOPE === undefined ? 'read' : __ENV.SCOPE;
const auth = __ENV.AUTH || 'basic';

export const options = {
  scenarios: {
    client_credentials: {
      executor: 'constant-vus',
      vus: parseInt(__ENV.VUS || '32', 10),
      duration: __ENV.DURATION || '20s',
    },
  },
  thresholds: {
    http_req_failed: ['rate<0.01'],
    'http_req_duration{grant:client_credentials}': ['p(99)<5'],
    checks: ['rate>0.99'],
  },
  discardResponseBodies: false,
};

// RFC 6749 §2.3.1: the client id and secret are form-url-encoded before
// they are joined for HTTP Basic.
function formEncode(s) {
  return encodeURIComponent(s).replace(/%20/g, '+');
}

function requestParams() {
  const form = { grant_type: 'client_credentials' };
  if (scope !== '') form.scope = scope;
  if (resource !== '') form.resource = resource;
  const headers = { 'Content-Type': 'application/x-www-form-urlencoded' };
  if (auth === 'post') {
    form.client_id = clientID;
    form.client_secret = clientSecret;
  } else {
    headers.Authorization = `Basic ${encoding.b64encode(`${formEncode(clientID)}:${formEncode(clientSecret)}`)}`;
  }
  const body = Object.keys(form)
    .map((k) => `${formEncode(k)}=${formEncode(form[k])}`)
    .join('&');
  return { body, headers };
}

const req = requestParams();

export function setup() {
  if (clientSecret === '') {
    throw new Error('CLIENT_SECRET is required');
  }
}

export default function () {
  const res = http.post(tokenURL, req.body, { headers: req.headers, tags: { grant: 'client_credentials' } });
  check(res, {
    'status is 200': (r) => r.status === 200,
    'is a bearer token': (r) => r.json('token_type') === 'Bearer',
    'is not cached': (r) => r.headers['Cache-Control'] === 'no-store',
  });
}
