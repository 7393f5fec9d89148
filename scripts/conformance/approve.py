"""Plays the person in the MCP conformance suite's authorization-code-grant
scenario: waits for the authorize URL the suite prints, signs in as the
test user and approves the consent screen, so the suite's callback server
receives the code. Usage: approve.py LOG ISSUER USER PASSWORD"""
import re, sys, time, html, urllib.request, urllib.parse, http.cookiejar
log, issuer, user, password = sys.argv[1:5]
url = None
for _ in range(120):
    m = re.search(re.escape(issuer) + r'/authorize\?\S+', open(log).read())
    if m: url = m.group(0); break
    time.sleep(0.5)
if not url: sys.exit("no authorize URL")
cj = http.cookiejar.CookieJar()
op = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cj))
def get(u): return op.open(u).read().decode()
def post(u, d):
    req = urllib.request.Request(u, data=urllib.parse.urlencode(d, doseq=True).encode(), headers={"Origin": issuer})
    return op.open(req).read().decode()
f = lambda n, p: html.unescape(re.search(r'name="%s" value="([^"]*)"' % n, p).group(1))
p = get(url)
p = post(issuer + "/login", {"csrf_token": f("csrf_token", p), "return_to": f("return_to", p), "username": user, "password": password})
if 'action="/authorize/decision"' in p:
    scopes = re.findall(r'name="scope" value="([^"]*)" checked', p)
    p = post(issuer + "/authorize/decision", {"csrf_token": f("csrf_token", p), "request": f("request", p), "decision": "allow", "scope": scopes})
print("drove the browser:", p[:200])
