// Interop check: the official TypeScript MCP SDK client against an agentid
// demo hub. It registers dynamically, plays the person headlessly (login and
// consent with Node's fetch and manual cookies), calls read_notes, then
// write_note, which needs a step-up to notes.write.
//
// Usage: node client.mjs '<first JSON line printed by `agentid demo --json`>'
// Exits non-zero on the first failure.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

const demo = JSON.parse(process.argv[2] ?? process.env.DEMO_JSON ?? '');
const REDIRECT_URL = process.env.REDIRECT_URL ?? 'http://127.0.0.1:18482/callback';
const VERBOSE = process.env.VERBOSE === '1';

function log(...args) {
  console.error('[client]', ...args);
}

// HTTP log of everything the SDK sends, so failures show the exchange.
async function loggingFetch(input, init) {
  const method = init?.method ?? 'GET';
  const url = typeof input === 'string' ? input : input.url ?? String(input);
  const res = await fetch(input, init);
  const www = res.headers.get('www-authenticate');
  if (VERBOSE || !res.ok) {
    let body = '';
    if (!res.ok) body = await res.clone().text().catch(() => '');
    log(`SDK ${method} ${url} -> ${res.status}` + (www ? ` WWW-Authenticate: ${www}` : '') + (body ? ` body: ${body.slice(0, 500)}` : ''));
  }
  return res;
}

// --- the person, headless -------------------------------------------------

class Browser {
  constructor(origin) {
    this.origin = origin;
    this.cookies = new Map();
  }

  storeCookies(res) {
    for (const sc of res.headers.getSetCookie()) {
      const [pair] = sc.split(';');
      const i = pair.indexOf('=');
      const name = pair.slice(0, i).trim();
      const value = pair.slice(i + 1).trim();
      if (/max-age=0|expires=thu, 01 jan 1970/i.test(sc) || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  cookieHeader() {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  async request(method, url, body) {
    const headers = { cookie: this.cookieHeader() };
    if (body !== undefined) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      headers.origin = this.origin;
    }
    const res = await fetch(url, { method, headers, body, redirect: 'manual' });
    this.storeCookies(res);
    const text = await res.text();
    if (VERBOSE) log(`person ${method} ${url} -> ${res.status}`);
    return { status: res.status, location: res.headers.get('location'), text, url };
  }
}

function parseForm(html, action) {
  const re = new RegExp(`<form[^>]*action="${action.replace(/[/]/g, '\\/')}"[^>]*>([\\s\\S]*?)</form>`, 'i');
  const m = html.match(re);
  if (!m) return undefined;
  const inputs = [];
  for (const tag of m[1].matchAll(/<input\b[^>]*>/gi)) {
    const attr = (n) => {
      const a = tag[0].match(new RegExp(`\\b${n}="([^"]*)"`, 'i'));
      return a ? decodeEntities(a[1]) : undefined;
    };
    inputs.push({
      type: (attr('type') ?? 'text').toLowerCase(),
      name: attr('name'),
      value: attr('value') ?? '',
      checked: /\bchecked\b/i.test(tag[0]),
    });
  }
  return inputs;
}

function decodeEntities(s) {
  return s
    .replace(/&#(\d+);/g, (_, d) => String.fromCharCode(Number(d)))
    .replace(/&#x([0-9a-f]+);/gi, (_, h) => String.fromCharCode(parseInt(h, 16)))
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

// Walks the authorization URL to the redirect back to the client and returns
// that Location. Logs in if the hub asks, and consents to every scope offered.
async function playPerson(browser, authorizationUrl) {
  let res = await browser.request('GET', authorizationUrl);
  for (let step = 0; step < 10; step++) {
    if (res.status >= 300 && res.status < 400) {
      const next = new URL(res.location, res.url).toString();
      if (next.startsWith(REDIRECT_URL)) return new URL(next);
      res = await browser.request('GET', next);
      continue;
    }
    if (res.status !== 200) throw new Error(`person: ${res.url} answered ${res.status}: ${res.text.slice(0, 500)}`);
    const login = parseForm(res.text, '/login');
    if (login) {
      const form = new URLSearchParams();
      for (const i of login) if (i.type === 'hidden' && i.name) form.append(i.name, i.value);
      form.set('username', demo.username);
      form.set('password', demo.password);
      log('person: logging in');
      res = await browser.request('POST', new URL('/login', demo.issuer).toString(), form.toString());
      continue;
    }
    const consent = parseForm(res.text, '/authorize/decision');
    if (consent) {
      const form = new URLSearchParams();
      const scopes = [];
      let duration;
      for (const i of consent) {
        if (!i.name) continue;
        if (i.type === 'hidden') form.append(i.name, i.value);
        if (i.type === 'checkbox' && i.name === 'scope') {
          scopes.push(i.value);
          form.append('scope', i.value);
        }
        if (i.type === 'radio' && i.name === 'duration' && (i.checked || duration === undefined)) duration = i.value;
      }
      if (duration !== undefined) form.set('duration', duration);
      form.set('decision', 'allow');
      log(`person: consenting to [${scopes.join(' ')}] for ${duration}`);
      res = await browser.request('POST', new URL('/authorize/decision', demo.issuer).toString(), form.toString());
      continue;
    }
    throw new Error(`person: page at ${res.url} has neither a login nor a consent form: ${res.text.slice(0, 500)}`);
  }
  throw new Error('person: too many steps');
}

// --- the SDK's OAuthClientProvider -----------------------------------------

class HeadlessProvider {
  constructor(browser) {
    this.browser = browser;
    this._clientInformation = undefined;
    this._tokens = undefined;
    this._codeVerifier = undefined;
    this._state = undefined;
    this.pendingCode = undefined;
    this.redirects = 0;
  }
  get redirectUrl() {
    return REDIRECT_URL;
  }
  get clientMetadata() {
    return {
      client_name: 'agentid TS SDK interop check',
      redirect_uris: [REDIRECT_URL],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  state() {
    this._state = crypto.randomUUID();
    return this._state;
  }
  clientInformation() {
    return this._clientInformation;
  }
  saveClientInformation(info) {
    log(`registered client_id ${info.client_id}`);
    this._clientInformation = info;
  }
  tokens() {
    // While stepping up, hide the refresh token: a refresh cannot widen scope
    // (RFC 6749 §6), and SDK v1 tries one before re-authorizing.
    if (this.stepUp && this._tokens) {
      const { refresh_token: _, ...rest } = this._tokens;
      return rest;
    }
    return this._tokens;
  }
  saveTokens(tokens) {
    log(`tokens saved: scope="${tokens.scope}" refresh=${tokens.refresh_token ? 'yes' : 'no'}`);
    this._tokens = tokens;
  }
  saveCodeVerifier(v) {
    this._codeVerifier = v;
  }
  codeVerifier() {
    return this._codeVerifier;
  }
  async redirectToAuthorization(url) {
    this.redirects++;
    log(`redirectToAuthorization scope="${url.searchParams.get('scope')}" resource="${url.searchParams.get('resource')}"`);
    const back = await playPerson(this.browser, url.toString());
    const err = back.searchParams.get('error');
    if (err) throw new Error(`authorization error: ${err} ${back.searchParams.get('error_description') ?? ''}`);
    if (back.searchParams.get('state') !== this._state) throw new Error('state mismatch on the redirect back');
    if (back.searchParams.get('iss') !== null && back.searchParams.get('iss') !== demo.issuer) {
      throw new Error(`iss mismatch: ${back.searchParams.get('iss')}`); // RFC 9207 §2.4
    }
    this.pendingCode = back.searchParams.get('code');
    this.stepUp = false;
  }
}

// --- the run ----------------------------------------------------------------

const browser = new Browser(demo.issuer);
const provider = new HeadlessProvider(browser);
if (process.env.PREREGISTER) {
  // Register without a scope so the hub bounds the client only by policy.
  const res = await fetch(new URL('/register', demo.issuer), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...provider.clientMetadata, ...(process.env.PREREGISTER === 'all' ? { scope: 'notes.read notes.write' } : {}) }),
  });
  if (res.status !== 201) throw new Error(`pre-registration: ${res.status} ${await res.text()}`);
  provider.saveClientInformation({ ...(await res.json()), issuer: demo.issuer });
}
const transport = new StreamableHTTPClientTransport(new URL(demo.mcp_url), { authProvider: provider, fetch: loggingFetch });
let client = new Client({ name: 'agentid-interop', version: '0.0.0' });

// connect → UnauthorizedError → finishAuth → reconnect (the SDK's documented
// pattern for a client whose redirect comes back out of band).
try {
  await client.connect(transport);
  throw new Error('connected without authorization');
} catch (e) {
  if (!(e instanceof UnauthorizedError)) throw e;
  log('connect: UnauthorizedError, finishing authorization');
  await transport.finishAuth(provider.pendingCode);
  provider.pendingCode = undefined;
}
const transport2 = new StreamableHTTPClientTransport(new URL(demo.mcp_url), { authProvider: provider, fetch: loggingFetch });
client = new Client({ name: 'agentid-interop', version: '0.0.0' });
await client.connect(transport2);
log(`connected: server ${JSON.stringify(client.getServerVersion())}`);

const { tools } = await client.listTools();
log(`tools: ${tools.map((t) => t.name).join(', ')}`);
if (!tools.some((t) => t.name === 'read_notes') || !tools.some((t) => t.name === 'write_note')) throw new Error('expected read_notes and write_note');

const read = await client.callTool({ name: 'read_notes', arguments: {} });
if (read.isError) throw new Error(`read_notes failed: ${JSON.stringify(read)}`);
log(`read_notes: ${JSON.stringify(read.content).slice(0, 200)}`);

// Step-up: the hub answers 403 insufficient_scope; the SDK re-runs auth with
// the challenged scope, which redirects the person again.
const writeArgs = { text: 'written by the TypeScript SDK interop check' };
async function writeWithStepUp() {
  try {
    return await client.callTool({ name: 'write_note', arguments: writeArgs });
  } catch (e) {
    if (!(e instanceof UnauthorizedError)) throw e;
    log('write_note: UnauthorizedError (step-up), finishing authorization');
    await transport2.finishAuth(provider.pendingCode);
    provider.pendingCode = undefined;
    return await client.callTool({ name: 'write_note', arguments: writeArgs });
  }
}
let wrote;
try {
  wrote = await writeWithStepUp();
} catch (e) {
  // SDK v1 answers 403 insufficient_scope by refreshing when it holds a
  // refresh token; the refreshed token keeps the old scope, the retry gets
  // the same 403 and the SDK gives up (typescript-sdk issue #2255).
  if (!/403 after trying upscoping/.test(String(e?.message))) throw e;
  log(`write_note: SDK gave up after a refresh (${e.message}); retrying with the refresh token hidden`);
  if (provider.redirects !== 1) throw new Error(`expected no second authorization round yet, saw ${provider.redirects}`);
  provider.stepUp = true;
  await client.ping(); // a successful request clears the SDK's upscoping loop guard
  wrote = await writeWithStepUp();
}
if (wrote.isError) throw new Error(`write_note failed: ${JSON.stringify(wrote)}`);
log(`write_note: ${JSON.stringify(wrote.content).slice(0, 200)}`);
if (!String(provider._tokens.scope ?? '').split(' ').includes('notes.write')) throw new Error('final token lacks notes.write');

const after = await client.callTool({ name: 'read_notes', arguments: {} });
if (!JSON.stringify(after.content).includes('TypeScript SDK interop')) throw new Error(`note not read back: ${JSON.stringify(after.content)}`);
log(`authorization rounds: ${provider.redirects}`);
await client.close();
console.log('OK');
