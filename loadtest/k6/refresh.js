// k6 scenario: the refresh-token grant with rotation (RFC 6749 §6, RFC 9700
// §4.14.2) against a Valet issuer, for users who run k6 on their own load
// machines. Valet does not ship or install k6; loadtest/k6_test.go compiles
// and dry-runs this file with goja, and runs it against a real issuer, so
// it cannot rot.
//
// A refresh family is a chain: each response's refresh_token is the next
// request's, and presenting a superseded one revokes the family (reuse
// detection). So each VU owns one family and rotates it, one request in
// flight, as a real client does. setup() obtains one family per VU through
// the real grant: it signs in at the login page as a test user, approves the
// consent page, and exchanges the code with PKCE S256 (one login for all
// families: k6 keeps setup's cookies).
//
//   k6 run -e AUTHORIZE_URL=https://auth.example.com/authorize \
//          -e TOKEN_URL=https://auth.example.com/token -e ISSUER=https://auth.example.com \
//          -e CLIENT_ID=web-app -e CLIENT_SECRET=vcs_... -e REDIRECT_URI=https://app.example.com/cb \
//          -e LOGIN_USER=loadtest -e LOGIN_PASSWORD=... \
//          -e VUS=32 -e DURATION=60s loadtest/k6/refresh.js
//
// CLIENT_SECRET empty: a public client (client_id in the body, PKCE alone
// binds the code). SCOPE and RESOURCE are asked at /authorize; NARROW, if
// set, is sent as scope with every refresh (narrowing). SEED_FILE instead
// names a file of refresh tokens, one a line, minted beforehand (e.g.
// `refreshload -mint 32 -seed-out seed.txt`; give an absolute path, k6's
// open() resolves relative ones against the script); each file works once.
//
// Thresholds: every rotation succeeds (a failed or reused chain fails the
// run), and p99 under P99_MS (default 10) milliseconds.

import http from 'k6/http';
import { check, fail, sleep } from 'k6';
import crypto from 'k6/crypto';
import encoding from 'k6/encoding';
import { Counter } from 'k6/metrics';

const tokenURL = __ENV.TOKEN_URL || 'http://127.0.0.1:18080/token';
const authorizeURL = __ENV.AUTHORIZE_URL || tokenURL.replace(/\/token$/, '/authorize');
const issuer = __ENV.ISSUER || '';
const clientID = __ENV.CLIENT_ID || 'loadtest-web';
const clientSecret = __ENV.CLIENT_SECRET || '';
const redirectURI = __ENV.REDIRECT_URI || 'http://127.0.0.1:9/callback';
const username = __ENV.LOGIN_USER || '';
const password = __ENV.LOGIN_PASSWORD || '';
const scope = __ENV.SCOPE === undefined ? 'read write' : __ENV.SCOPE;
const resource = __ENV.RESOURCE || '';
const narrow = __ENV.NARROW || '';
const vus = parseInt(__ENV.VUS || '32', 10);
const p99 = parseFloat(__ENV.P99_MS || '10');

// A seed file is read in the init context, the only place open() works.
const seed = __ENV.SEED_FILE
  ? open(__ENV.SEED_FILE).split('\n').map((l) => l.trim()).filter((l) => l !== '' && l[0] !== '#')
  : null;

export const options = {
  scenarios: {
    refresh: {
      executor: 'constant-vus',
      vus: vus,
      duration: __ENV.DURATION || '20s',
    },
  },
  // setup() signs in once and runs one authorization per VU.
  setupTimeout: __ENV.SETUP_TIMEOUT || '120s',
  thresholds: {
    'http_req_failed{grant:refresh_token}': ['rate==0'],
    'http_req_duration{grant:refresh_token}': [`p(99)<${p99}`],
    'checks{grant:refresh_token}': ['rate==1'],
    refresh_reuse_detected: ['count==0'],
    refresh_chains_broken: ['count==0'],
  },
  discardResponseBodies: false,
};

const rotations = new Counter('refresh_rotations');
const reuseDetected = new Counter('refresh_reuse_detected');
const chainsBroken = new Counter('refresh_chains_broken');

// RFC 6749 appendix B: application/x-www-form-urlencoded.
function formEncode(s) {
  return encodeURIComponent(s).replace(/%20/g, '+');
}

function formBody(fields) {
  return Object.keys(fields)
    .map((k) => `${formEncode(k)}=${formEncode(fields[k])}`)
    .join('&');
}

function formDecode(s) {
  return decodeURIComponent(s.replace(/\+/g, ' '));
}

const formHeaders = { 'Content-Type': 'application/x-www-form-urlencoded' };
const clientHeaders = clientSecret === ''
  ? formHeaders
  : Object.assign({
    // RFC 6749 §2.3.1: id and secret are form-url-encoded before they are joined.
    Authorization: `Basic ${encoding.b64encode(`${formEncode(clientID)}:${formEncode(clientSecret)}`)}`,
  }, formHeaders);

// The client authenticates with HTTP Basic, or, public, names itself.
function withClient(fields) {
  if (clientSecret === '') fields.client_id = clientID;
  return fields;
}

const origin = (authorizeURL.match(/^https?:\/\/[^/]+/) || [''])[0];

function resolve(ref) {
  return /^https?:\/\//.test(ref) ? ref : origin + ref;
}

function unescapeHTML(s) {
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);/g, (m, e) => {
    switch (e) {
      case 'amp': return '&';
      case 'lt': return '<';
      case 'gt': return '>';
      case 'quot': return '"';
      case 'apos': return "'";
      default:
        return String.fromCharCode(e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
    }
  });
}

// The hidden fields of the issuer's login or consent form (csrf, request).
function hiddenFields(body) {
  const fields = {};
  const re = /<input type="hidden" name="([a-z_]+)" value="([^"]*)"/g;
  let m;
  while ((m = re.exec(body)) !== null) fields[m[1]] = unescapeHTML(m[2]);
  if (!fields.csrf) fail('the issuer page has no csrf field');
  return fields;
}

function formAction(body, def) {
  const m = body.match(/<form method="post" action="([^"]*)"/);
  return m ? unescapeHTML(m[1]) : def;
}

function queryParams(u) {
  const out = {};
  const q = u.indexOf('?') < 0 ? '' : u.slice(u.indexOf('?') + 1).split('#')[0];
  for (const kv of q.split('&')) {
    if (kv === '') continue;
    const i = kv.indexOf('=');
    out[formDecode(i < 0 ? kv : kv.slice(0, i))] = i < 0 ? '' : formDecode(kv.slice(i + 1));
  }
  return out;
}

const browser = { redirects: 0, tags: { grant: 'authorization_code' } };

// newFamily runs /authorize (PKCE S256, RFC 7636), the login and consent
// forms when the issuer shows them, and the code exchange; it returns the
// refresh token of the new family.
function newFamily() {
  const verifier = encoding.b64encode(crypto.randomBytes(32), 'rawurl');
  const state = encoding.b64encode(crypto.randomBytes(16), 'rawurl');
  const q = {
    response_type: 'code', client_id: clientID, redirect_uri: redirectURI, state: state,
    code_challenge: crypto.sha256(verifier, 'base64rawurl'), code_challenge_method: 'S256',
  };
  if (scope !== '') q.scope = scope;
  if (resource !== '') q.resource = resource;
  let res = http.get(`${authorizeURL}?${formBody(q)}`, browser);
  for (let step = 0; step < 6; step++) {
    const location = res.headers.Location || '';
    if (res.status === 200 && res.body.indexOf('name="password"') >= 0) {
      const f = hiddenFields(res.body);
      f.username = username;
      f.password = password;
      res = http.post(resolve(formAction(res.body, '/login')), formBody(f), Object.assign({ headers: formHeaders }, browser));
      if (res.status !== 303) fail(`login answered ${res.status} (check LOGIN_USER and LOGIN_PASSWORD)`);
    } else if (res.status === 200 && res.body.indexOf('name="approve"') >= 0) {
      const f = hiddenFields(res.body);
      f.approve = '1';
      res = http.post(resolve(formAction(res.body, '/consent')), formBody(f), Object.assign({ headers: formHeaders }, browser));
    } else if ((res.status === 302 || res.status === 303) && location.indexOf(redirectURI) === 0) {
      return exchange(location, state, verifier);
    } else if (res.status === 302 || res.status === 303) {
      res = http.get(resolve(location), browser);
    } else {
      fail(`the authorization stopped at status ${res.status}`);
    }
  }
  return fail('no authorization code after 6 pages');
}

// exchange checks the redirect (state, RFC 9207 iss) and redeems the code.
function exchange(location, state, verifier) {
  const p = queryParams(location);
  if (p.error) fail(`authorization refused: ${p.error}: ${p.error_description || ''}`);
  if (p.state !== state) fail('the redirect does not carry our state');
  if (issuer !== '' && p.iss !== issuer) fail(`the redirect's iss is ${p.iss}, want ${issuer}`);
  const res = http.post(tokenURL, formBody(withClient({
    grant_type: 'authorization_code', code: p.code, redirect_uri: redirectURI, code_verifier: verifier,
  })), { headers: clientHeaders, tags: { grant: 'authorization_code' } });
  const rt = res.status === 200 ? res.json('refresh_token') : '';
  if (typeof rt !== 'string' || rt === '') {
    fail(`code exchange answered ${res.status} without a refresh token (is the client allowed refresh_token?)`);
  }
  return rt;
}

export function setup() {
  if (seed !== null) {
    if (seed.length < vus) fail(`SEED_FILE holds ${seed.length} refresh tokens; ${vus} VUs need one each`);
    return { tokens: seed.slice(0, vus) };
  }
  if (username === '' || password === '') fail('LOGIN_USER and LOGIN_PASSWORD are required (or SEED_FILE)');
  if (clientSecret === '' && __ENV.PUBLIC !== '1') {
    console.warn('CLIENT_SECRET is empty: running as a public client (set PUBLIC=1 to silence this)');
  }
  const tokens = [];
  for (let i = 0; i < vus; i++) tokens.push(newFamily());
  return { tokens: tokens };
}

// This VU's chain: its current refresh token, '' once broken. Module state
// lives as long as the VU, across iterations.
let current = null;

export default function (data) {
  if (current === null) {
    current = data.tokens[__VU - 1] || '';
    if (current === '') fail(`no family for VU ${__VU}`);
  }
  if (current === '') {
    sleep(1); // a broken chain cannot go on: presenting its token again could be taken for reuse
    return;
  }
  const fields = { grant_type: 'refresh_token', refresh_token: current };
  if (narrow !== '') fields.scope = narrow;
  const res = http.post(tokenURL, formBody(withClient(fields)), { headers: clientHeaders, tags: { grant: 'refresh_token' } });
  const next = res.status === 200 ? res.json('refresh_token') : '';
  const ok = check(res, {
    'status is 200': (r) => r.status === 200,
    'is a bearer token': (r) => r.status === 200 && r.json('token_type') === 'Bearer',
    'rotates the refresh token': () => typeof next === 'string' && next !== '' && next !== current,
    'is not cached': (r) => r.headers['Cache-Control'] === 'no-store',
  }, { grant: 'refresh_token' });
  if (ok) {
    rotations.add(1);
    current = next;
    return;
  }
  if (res.status === 400 && res.json('error') === 'invalid_grant'
    && String(res.json('error_description') || '').indexOf('already used') >= 0) {
    reuseDetected.add(1);
    console.error(`VU ${__VU}: REUSE DETECTED, the family was revoked`);
  }
  chainsBroken.add(1);
  current = '';
}
