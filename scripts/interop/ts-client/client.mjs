// Interop check: the official TypeScript MCP SDK client against an agentid
// demo hub. It registers dynamically, plays the person headlessly (login,
// consent, the "Continue to <app>?" page and the refusal page, with Node's
// fetch and kept cookies), calls read_notes, then write_note, which needs a
// step-up to notes.write, then delete_note, whose notes.delete the default
// policy refuses: that must end in a clear invalid_scope refusal, not a loop.
// Then an agent that kept its registration but lost its tokens signs in again
// through the continue page, and a new client that asks for every scope at
// once sees notes.delete listed as not available on its consent screen.
//
// With CIMD=1 the agents identify themselves with Client ID Metadata
// Documents instead of registering: the script serves each agent's document
// over https on loopback (CIMD_CERT and CIMD_KEY: a certificate run.sh made,
// which the demo hub trusts through SSL_CERT_FILE, and fetches through its
// loopback development allowance) and gives its URL as clientMetadataUrl.
// The SDK uses that URL as client_id because the hub's metadata advertises
// client_id_metadata_document_supported; nothing is ever POSTed to /register.
//
// Usage: [MCP_SDK=v2] [CIMD=1 CIMD_CERT=… CIMD_KEY=…] node client.mjs '<first JSON line printed by `agentid demo --json`>'
// Exits non-zero on the first failure.

// MCP_SDK=v2 runs the SDK's v2 client package (@modelcontextprotocol/client)
// instead of v1 (@modelcontextprotocol/sdk); the provider below serves both.
const V2 = process.env.MCP_SDK === 'v2';
const { Client, StreamableHTTPClientTransport, UnauthorizedError, auth } = V2
  ? await import('@modelcontextprotocol/client')
  : {
      ...(await import('@modelcontextprotocol/sdk/client/index.js')),
      ...(await import('@modelcontextprotocol/sdk/client/streamableHttp.js')),
      ...(await import('@modelcontextprotocol/sdk/client/auth.js')),
    };

const demo = JSON.parse(process.argv[2] ?? process.env.DEMO_JSON ?? '');
const REDIRECT_URL = process.env.REDIRECT_URL ?? 'http://127.0.0.1:18482/callback';
const VERBOSE = process.env.VERBOSE === '1';
const CIMD = process.env.CIMD === '1';

function log(...args) {
  console.error('[client]', ...args);
}

// HTTP log of everything the SDK sends, so failures show the exchange.
const registrations = [];
async function loggingFetch(input, init) {
  const method = init?.method ?? 'GET';
  const url = typeof input === 'string' ? input : input.url ?? String(input);
  if (method === 'POST' && new URL(url).pathname === '/register') registrations.push(url);
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
    this.pages = [];
    this.unavailable = [];
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

// The refusal the hub sent back to the redirect URI (RFC 6749 §4.1.2.1), as
// the provider throws it; the SDK passes it through to the caller.
class AuthorizationRefused extends Error {
  constructor(code, description) {
    super(`authorization refused: ${code}${description ? `: ${description}` : ''}`);
    this.code = code;
    this.description = description ?? '';
  }
}

// The scopes a page lists as not available, with the reason it gives.
function unavailable(html) {
  const m = html.match(/<section class="refused"[\s\S]*?<\/section>/i);
  if (!m) return [];
  return [...m[0].matchAll(/<code>([^<]*)<\/code>\s*<span class="block">([^<]*)<\/span>/gi)].map((x) => ({
    scope: decodeEntities(x[1]),
    reason: decodeEntities(x[2]),
  }));
}

// Walks the authorization URL to the redirect back to the client and returns
// that URL. Logs in if the hub asks, consents to every scope offered,
// continues on the "Continue to <app>?" page, and on a refusal page follows
// its "Back to the application" link. Each page seen is recorded in
// browser.pages ('login', 'consent', 'continue', 'refused'); each scope shown
// as not available in browser.unavailable.
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
    const off = unavailable(res.text);
    for (const u of off) log(`person: the page lists ${u.scope} as not available: ${u.reason}`);
    browser.unavailable.push(...off);
    const login = parseForm(res.text, '/login');
    if (login) {
      browser.pages.push('login');
      const form = new URLSearchParams();
      for (const i of login) if (i.type === 'hidden' && i.name) form.append(i.name, i.value);
      form.set('username', demo.username);
      form.set('password', demo.password);
      log('person: logging in');
      res = await browser.request('POST', new URL('/login', demo.issuer).toString(), form.toString());
      continue;
    }
    const decision = parseForm(res.text, '/authorize/decision');
    if (decision) {
      // The form token is bound to the session: take it from this page.
      const form = new URLSearchParams();
      const scopes = [];
      let duration;
      for (const i of decision) {
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
      if (/\bid="continue"/.test(res.text)) {
        if (scopes.length) throw new Error(`person: the continue page offers scopes to tick: ${scopes.join(' ')}`);
        browser.pages.push('continue');
        log(`person: continuing (${res.text.match(/<h1>([\s\S]*?)<\/h1>/)?.[1].replace(/<[^>]*>/g, '') ?? 'continue page'})`);
      } else {
        if (!scopes.length) throw new Error(`person: a consent form with nothing to tick: ${res.text.slice(0, 500)}`);
        browser.pages.push('consent');
        log(`person: consenting to [${scopes.join(' ')}] for ${duration}`);
      }
      res = await browser.request('POST', new URL('/authorize/decision', demo.issuer).toString(), form.toString());
      continue;
    }
    const back = res.text.match(/<a\b[^>]*\bid="back"[^>]*\bhref="([^"]*)"/i) ?? res.text.match(/<a\b[^>]*\bhref="([^"]*)"[^>]*\bid="back"/i);
    if (back && off.length) {
      browser.pages.push('refused');
      const href = new URL(decodeEntities(back[1]), res.url);
      log(`person: nothing left to approve; following "Back to the application"`);
      if (!href.toString().startsWith(REDIRECT_URL)) throw new Error(`person: the back link leaves for ${href}, not the redirect URI`);
      return href;
    }
    throw new Error(`person: page at ${res.url} has no login, decision or refusal: ${res.text.slice(0, 500)}`);
  }
  throw new Error('person: too many steps');
}

// --- the SDK's OAuthClientProvider -----------------------------------------

class HeadlessProvider {
  // metadataUrl: the agent's Client ID Metadata Document (CIMD=1), else
  // undefined and the SDK registers the agent dynamically.
  constructor(browser, metadataUrl) {
    this.browser = browser;
    this.metadataUrl = metadataUrl;
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
  get clientMetadataUrl() {
    return this.metadataUrl;
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
    if (this.metadataUrl && info.client_id !== this.metadataUrl) throw new Error(`CIMD: the SDK chose client_id ${info.client_id}, want ${this.metadataUrl}`);
    log(`${this.metadataUrl ? 'metadata document' : 'registered'} client_id ${info.client_id}`);
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
  saveDiscoveryState(state) {
    this._discovery = state;
  }
  discoveryState() {
    return this._discovery;
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
    this.stepUp = false;
    const back = await playPerson(this.browser, url.toString());
    if (back.searchParams.get('state') !== this._state) throw new Error('state mismatch on the redirect back');
    if (back.searchParams.get('iss') !== demo.issuer) {
      throw new Error(`iss mismatch: ${back.searchParams.get('iss')}`); // RFC 9207 §2.4: the hub always sends it
    }
    const err = back.searchParams.get('error');
    if (err) throw new AuthorizationRefused(err, back.searchParams.get('error_description'));
    this.pendingCode = back.searchParams.get('code');
    this.pendingIss = back.searchParams.get('iss');
  }
}

// --- the agents' metadata documents (CIMD=1) ---------------------------------

// documentURL(n) is agent n's document URL; its document lists the one
// redirect URI and the public client's fields (MCP 2026-07-28 CIMD example).
let documentURL = () => undefined;
const documentFetches = new Map();
if (CIMD) {
  const https = await import('node:https');
  const fs = await import('node:fs');
  const meta = await (await fetch(new URL('/.well-known/oauth-authorization-server', demo.issuer))).json();
  if (meta.client_id_metadata_document_supported !== true) throw new Error('CIMD: the hub does not advertise client_id_metadata_document_supported');
  let base;
  const server = https.createServer({ key: fs.readFileSync(process.env.CIMD_KEY), cert: fs.readFileSync(process.env.CIMD_CERT) }, (req, res) => {
    const m = req.url.match(/^\/agent-(\d+)\.json$/);
    if (!m) {
      res.writeHead(404).end();
      return;
    }
    documentFetches.set(req.url, (documentFetches.get(req.url) ?? 0) + 1);
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=300' });
    res.end(JSON.stringify({
      client_id: base + req.url,
      client_name: `agentid TS SDK interop check ${m[1]}`,
      redirect_uris: [REDIRECT_URL],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    }));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  server.unref();
  base = `https://127.0.0.1:${server.address().port}`;
  documentURL = (n) => `${base}/agent-${n}.json`;
  log(`CIMD: serving the agents' documents at ${base}`);
}

// --- the run ----------------------------------------------------------------

const browser = new Browser(demo.issuer);
const provider = new HeadlessProvider(browser, documentURL(1));
if (process.env.PREREGISTER && !CIMD) {
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
  await transport.finishAuth(provider.pendingCode, provider.pendingIss);
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
async function callWithStepUp(name, args) {
  const call = async () => {
    try {
      return await client.callTool({ name, arguments: args });
    } catch (e) {
      if (!(e instanceof UnauthorizedError)) throw e;
      log(`${name}: UnauthorizedError (step-up), finishing authorization`);
      await transport2.finishAuth(provider.pendingCode, provider.pendingIss);
      provider.pendingCode = undefined;
      return await client.callTool({ name, arguments: args });
    }
  };
  try {
    return await call();
  } catch (e) {
    // SDK v1 answers 403 insufficient_scope by refreshing when it holds a
    // refresh token; the refreshed token keeps the old scope, the retry gets
    // the same 403 and the SDK gives up (typescript-sdk issue #2255). v2
    // re-authorizes at once and never needs this.
    if (V2 || !/403 after trying upscoping/.test(String(e?.message))) throw e;
    log(`${name}: SDK gave up after a refresh (${e.message}); retrying with the refresh token hidden`);
    provider.stepUp = true;
    try {
      await client.ping(); // a successful request clears the SDK's upscoping loop guard
      return await call();
    } finally {
      provider.stepUp = false;
    }
  }
}

const writeArgs = { text: 'written by the TypeScript SDK interop check' };
const wrote = await callWithStepUp('write_note', writeArgs);
if (wrote.isError) throw new Error(`write_note failed: ${JSON.stringify(wrote)}`);
log(`write_note: ${JSON.stringify(wrote.content).slice(0, 200)}`);
if (provider.redirects !== 2) throw new Error(`authorization rounds after the write = ${provider.redirects}, want 2`);
if (!String(provider._tokens.scope ?? '').split(' ').includes('notes.write')) throw new Error('final token lacks notes.write');

const after = await client.callTool({ name: 'read_notes', arguments: {} });
if (!JSON.stringify(after.content).includes('TypeScript SDK interop')) throw new Error(`note not read back: ${JSON.stringify(after.content)}`);

// delete_note needs notes.delete, which the default policy keeps from a
// self-registered agent (and a client registered for less cannot have). The
// hub must say so: the person sees why and the client gets invalid_scope
// naming the scope, in at most two authorization rounds, never a code.
const roundsBefore = provider.redirects;
const pagesBefore = browser.pages.length;
let refused;
try {
  const deleted = await callWithStepUp('delete_note', { id: 1 });
  throw new Error(`delete_note was not refused: ${JSON.stringify(deleted)}`);
} catch (e) {
  if (!(e instanceof AuthorizationRefused)) throw new Error(`delete_note: want a refusal from the hub, got ${e?.stack ?? e}`);
  refused = e;
}
const deleteRounds = provider.redirects - roundsBefore;
const deletePages = browser.pages.slice(pagesBefore);
log(`delete_note: refused by the hub (${refused.code}): ${refused.description}`);
log(`delete_note: ${deleteRounds} authorization round(s), pages ${deletePages.join(', ')}`);
if (refused.code !== 'invalid_scope') throw new Error(`delete_note: error ${refused.code}, want invalid_scope`);
if (!refused.description.includes('notes.delete')) throw new Error(`delete_note: the description does not name notes.delete: ${refused.description}`);
if (deleteRounds < 1 || deleteRounds > 2) throw new Error(`delete_note: ${deleteRounds} authorization rounds, want 1 or 2 (no loop)`);
if (deletePages.at(-1) !== 'refused') throw new Error(`delete_note: the person last saw ${deletePages.at(-1)}, want the refusal page`);
if (!browser.unavailable.some((u) => u.scope === 'notes.delete')) throw new Error('delete_note: the refusal page did not list notes.delete');
// The refusal took nothing away: the token still reads.
const stillThere = await client.callTool({ name: 'read_notes', arguments: {} });
if (!JSON.stringify(stillThere.content).includes('TypeScript SDK interop')) throw new Error(`read after the refusal: ${JSON.stringify(stillThere.content)}`);
log(`authorization rounds: ${provider.redirects}`);
await client.close();

// The agent restarts: it kept its registration but not its tokens. The
// person already allowed everything it asks for, but a public loopback
// client still gets the one-click "Continue to <app>?" page (RFC 8252 §8.6).
{
  const restarted = new HeadlessProvider(browser, documentURL(1));
  restarted._clientInformation = provider._clientInformation;
  log(`restart: client_id ${restarted._clientInformation.client_id} kept, tokens dropped`);
  const pagesAt = browser.pages.length;
  const t = new StreamableHTTPClientTransport(new URL(demo.mcp_url), { authProvider: restarted, fetch: loggingFetch });
  try {
    await new Client({ name: 'agentid-interop', version: '0.0.0' }).connect(t);
    throw new Error('restart: connected without authorization');
  } catch (e) {
    if (!(e instanceof UnauthorizedError)) throw e;
    await t.finishAuth(restarted.pendingCode, restarted.pendingIss);
  }
  const seen = browser.pages.slice(pagesAt);
  if (seen.join(',') !== 'continue') throw new Error(`restart: the person saw [${seen}], want only the continue page`);
  const c = new Client({ name: 'agentid-interop', version: '0.0.0' });
  await c.connect(new StreamableHTTPClientTransport(new URL(demo.mcp_url), { authProvider: restarted, fetch: loggingFetch }));
  const r = await c.callTool({ name: 'read_notes', arguments: {} });
  if (!JSON.stringify(r.content).includes('TypeScript SDK interop')) throw new Error(`restart: read_notes: ${JSON.stringify(r.content)}`);
  log(`restart: continue page, then read_notes with scope "${restarted._tokens.scope}"`);
  await c.close();
}

// A new client asks for every scope at once (the SDK's auth() with an
// explicit scope). Its consent screen offers what can be granted and lists
// notes.delete as not available; the token says which scopes it carries
// (RFC 6749 §5.1: it differs from the request).
{
  const fresh = new HeadlessProvider(browser, documentURL(2));
  const pagesAt = browser.pages.length;
  const offAt = browser.unavailable.length;
  const want = 'notes.read notes.write notes.delete';
  const result = await auth(fresh, { serverUrl: new URL(demo.mcp_url), scope: want, fetchFn: loggingFetch });
  if (result !== 'REDIRECT') throw new Error(`all scopes: auth() = ${result}, want REDIRECT`);
  await auth(fresh, { serverUrl: new URL(demo.mcp_url), scope: want, authorizationCode: fresh.pendingCode, iss: fresh.pendingIss, fetchFn: loggingFetch });
  const seen = browser.pages.slice(pagesAt);
  if (seen.join(',') !== 'consent') throw new Error(`all scopes: the person saw [${seen}], want the consent screen`);
  if (!browser.unavailable.slice(offAt).some((u) => u.scope === 'notes.delete')) throw new Error('all scopes: the consent screen did not list notes.delete as not available');
  const got = String(fresh._tokens?.scope ?? '').split(' ');
  if (got.includes('notes.delete') || !got.includes('notes.write')) throw new Error(`all scopes: token scope "${fresh._tokens?.scope}"`);
  log(`all scopes: consent without notes.delete; token scope "${fresh._tokens.scope}"`);
}
if (CIMD) {
  if (registrations.length) throw new Error(`CIMD: the SDK registered dynamically: ${registrations.join(', ')}`);
  const fetched = [...documentFetches].map(([p, n]) => `${p} ×${n}`).join(', ');
  if (documentFetches.size !== 2) throw new Error(`CIMD: the hub fetched [${fetched}], want both agents' documents`);
  log(`CIMD: no registration; the hub fetched ${fetched}`);
}
console.log('OK');
