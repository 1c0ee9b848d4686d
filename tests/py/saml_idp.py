"""A SAML 2.0 identity provider for the console tests, built on pysaml2
(an implementation independent of samael), on loopback.

    saml_idp.py --port P --dir D --sp-entity E --acs URL

Writes D/idp.key, D/idp.crt (and D/other.key, D/other.crt: a key the SP
does not trust), D/idp_metadata.xml, then serves:

  GET  /sso?SAMLRequest=...   the login page (HTTP-Redirect binding); its
                              #request-signature says whether the request
                              was signed by DIR/sp.crt's key
  POST /login                 username, password, SAMLRequest, variant:
                              the page that posts the SAMLResponse to the
                              ACS (form id "saml", button id "continue")

Users: alice (groups postern-admins), otto (postern-operators), victor
(postern-viewers), nora (no role group), admin@corp.evil (postern-admins);
the password of each is "pw-" + the name.

`variant` (default "good") builds the response as an attacker would from
a real one ("resigned": signed by this script, accepted; "unsolicited":
an IdP-initiated response, no SAMLRequest needed): unsigned, otherkey, rsa-sha1, xsw1 ... xsw8, comment,
audience, destination, recipient, expired, notyet, noaudience, issuer, status. Every variant but
"good" must be refused by the SP. Prints "READY" when listening.
"""

import argparse
import base64
import copy
import datetime
import html
import os
import subprocess
import sys
import tempfile
import urllib.parse
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

warnings.filterwarnings("ignore")

from lxml import etree  # noqa: E402
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, saml, server  # noqa: E402
from saml2.config import IdPConfig  # noqa: E402
from saml2.metadata import create_metadata_string  # noqa: E402
from saml2.saml import NAMEID_FORMAT_UNSPECIFIED, NameID  # noqa: E402
from saml2 import xmldsig  # noqa: E402
from saml2.sigver import verify_redirect_signature  # noqa: E402

NS = {
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
}
USERS = {
    "alice": ["postern-admins"],
    "otto": ["postern-operators"],
    "victor": ["postern-viewers"],
    "nora": ["marketing"],
    "admin@corp.evil": ["postern-admins"],
}
XMLSEC = "/usr/bin/xmlsec1"


def keypair(d, name):
    key, crt = os.path.join(d, name + ".key"), os.path.join(d, name + ".crt")
    if not os.path.exists(key):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
             "-out", crt, "-days", "3", "-subj", "/CN=" + name],
            check=True, capture_output=True,
        )
    return key, crt


def sp_metadata(path, entity, acs):
    with open(path, "w") as f:
        f.write(f"""<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{html.escape(entity)}">
  <md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol" WantAssertionsSigned="true">
    <md:AssertionConsumerService Binding="{BINDING_HTTP_POST}" Location="{html.escape(acs)}" index="0"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>""")


def make_idp(args, key, crt, sp_md):
    base = f"http://127.0.0.1:{args.port}"
    conf = IdPConfig()
    conf.load({
        "entityid": base + "/idp",
        "service": {"idp": {
            "endpoints": {"single_sign_on_service": [(base + "/sso", BINDING_HTTP_REDIRECT)]},
            "name_id_format": [NAMEID_FORMAT_UNSPECIFIED],
            "policy": {"default": {"lifetime": {"minutes": 5}, "name_form": "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"}},
            "want_authn_requests_signed": False,
        }},
        "key_file": key,
        "cert_file": crt,
        "metadata": {"local": [sp_md]},
        "xmlsec_binary": XMLSEC,
        "allow_unknown_attributes": True,
    })
    return server.Server(config=conf), conf


def sign_assertion(xml, key, crt, alg="rsa-sha256"):
    """Signs the (only, or first) Assertion of `xml` with xmlsec1: an
    enveloped exclusive-c14n signature, as IdPs make them."""
    doc = etree.fromstring(xml)
    a = doc.find(".//saml:Assertion", NS)
    for old in a.findall("ds:Signature", NS):
        a.remove(old)
    sig_uri = {"rsa-sha256": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
               "rsa-sha1": "http://www.w3.org/2000/09/xmldsig#rsa-sha1"}[alg]
    dig_uri = {"rsa-sha256": "http://www.w3.org/2001/04/xmlenc#sha256",
               "rsa-sha1": "http://www.w3.org/2000/09/xmldsig#sha1"}[alg]
    tpl = etree.fromstring(f"""<ds:Signature xmlns:ds="{NS['ds']}"><ds:SignedInfo>
<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
<ds:SignatureMethod Algorithm="{sig_uri}"/>
<ds:Reference URI="#{a.get('ID')}"><ds:Transforms>
<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>
<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms>
<ds:DigestMethod Algorithm="{dig_uri}"/><ds:DigestValue/></ds:Reference></ds:SignedInfo>
<ds:SignatureValue/><ds:KeyInfo><ds:X509Data><ds:X509Certificate/></ds:X509Data></ds:KeyInfo></ds:Signature>""")
    issuer = a.find("saml:Issuer", NS)
    issuer.addnext(tpl)
    with tempfile.NamedTemporaryFile("wb", suffix=".xml", delete=False) as f:
        f.write(etree.tostring(doc))
        path = f.name
    try:
        out = subprocess.run(
            [XMLSEC, "--sign", "--privkey-pem", f"{key},{crt}", "--id-attr:ID",
             "urn:oasis:names:tc:SAML:2.0:assertion:Assertion", path],
            check=True, capture_output=True,
        ).stdout
    finally:
        os.unlink(path)
    return out


def evil_copy(assertion, name="alice"):
    """The attacker's assertion: the real one with another NameID and the
    admin group, its signature dropped."""
    e = copy.deepcopy(assertion)
    for s in e.findall("ds:Signature", NS):
        e.remove(s)
    e.set("ID", "_evil" + assertion.get("ID"))
    e.find(".//saml:NameID", NS).text = "mallory@evil"
    for v in e.findall(".//saml:AttributeValue", NS):
        v.text = "postern-admins"
    return e


def xsw(xml, n, idp_sign_response):
    doc = etree.fromstring(xml)
    a = doc.find("saml:Assertion", NS)
    if n in (1, 2):
        # Response-signature wrapping: the signed Response copied next to
        # (2) or inside the signature of (1) a forged one.
        signed = idp_sign_response(xml)
        orig = etree.fromstring(signed)
        forged = copy.deepcopy(orig)
        fa = forged.find("saml:Assertion", NS)
        forged.replace(fa, evil_copy(fa))
        forged.set("ID", "_evilresp")
        sig = forged.find("ds:Signature", NS)
        inner = copy.deepcopy(orig)
        inner.remove(inner.find("ds:Signature", NS))
        if n == 1:
            sig.append(inner)
        else:
            sig.addprevious(inner)
        return etree.tostring(forged)
    evil = evil_copy(a)
    if n == 3:
        a.addprevious(evil)
    elif n == 4:
        doc.replace(a, evil)
        evil.append(a)
    elif n == 5:
        sig = copy.deepcopy(a.find("ds:Signature", NS))
        evil.set("ID", a.get("ID"))
        evil.find("saml:Issuer", NS).addnext(sig)
        doc.replace(a, evil)
        unsigned = copy.deepcopy(a)
        unsigned.remove(unsigned.find("ds:Signature", NS))
        doc.append(unsigned)
    elif n == 6:
        sig = copy.deepcopy(a.find("ds:Signature", NS))
        evil.set("ID", a.get("ID"))
        evil.find("saml:Issuer", NS).addnext(sig)
        doc.replace(a, evil)
        inner = copy.deepcopy(a)
        inner.remove(inner.find("ds:Signature", NS))
        sig.append(inner)
    elif n == 7:
        ext = etree.SubElement(doc, "{%s}Extensions" % NS["samlp"])
        doc.remove(ext)
        doc.find("saml:Issuer", NS).addnext(ext)
        ext.append(evil)
    elif n == 8:
        sig = copy.deepcopy(a.find("ds:Signature", NS))
        evil.find("saml:Issuer", NS).addnext(sig)
        obj = etree.SubElement(sig, "{%s}Object" % NS["ds"])
        inner = copy.deepcopy(a)
        inner.remove(inner.find("ds:Signature", NS))
        obj.append(inner)
        doc.replace(a, evil)
    return etree.tostring(doc)


class Idp:
    def __init__(self, args):
        os.makedirs(args.dir, exist_ok=True)
        self.key, self.crt = keypair(args.dir, "idp")
        self.okey, self.ocrt = keypair(args.dir, "other")
        sp_md = os.path.join(args.dir, "sp_metadata.xml")
        sp_metadata(sp_md, args.sp_entity, args.acs)
        self.server, conf = make_idp(args, self.key, self.crt, sp_md)
        md = create_metadata_string(None, config=conf, valid=48, sign=False)
        if isinstance(md, bytes):
            md = md.decode()
        with open(os.path.join(args.dir, "idp_metadata.xml"), "w") as f:
            f.write(md)
        self.acs = args.acs
        self.dir = args.dir
        self.sp_entity = args.sp_entity

    def response(self, saml_request, user, variant):
        if variant == "unsolicited":
            # IdP-initiated: answers no AuthnRequest (no InResponseTo).
            args = {"in_response_to": None, "destination": self.acs,
                    "sp_entity_id": self.sp_entity, "name_id_policy": None}
        else:
            req = self.server.parse_authn_request(saml_request, BINDING_HTTP_REDIRECT)
            args = self.server.response_args(req.message)
            args.pop("binding", None)
        if variant == "recipient":
            args["destination"] = "https://other.example/saml/acs"
        identity = {"groups": USERS[user]}
        authn = {"class_ref": saml.AUTHN_PASSWORD, "authn_auth": "postern-test-idp"}
        name_id = NameID(format=NAMEID_FORMAT_UNSPECIFIED, text=user)
        sign_alg, digest_alg = xmldsig.SIG_RSA_SHA256, xmldsig.DIGEST_SHA256
        if variant in ("good", "unsolicited"):
            # pysaml2's own signature: the real thing.
            resp = self.server.create_authn_response(
                identity, userid=user, name_id=name_id, authn=authn,
                sign_assertion=True, sign_response=False,
                sign_alg=sign_alg, digest_alg=digest_alg, **args)
            return str(resp).encode()
        unsigned = str(self.server.create_authn_response(
            identity, userid=user, name_id=name_id, authn=authn,
            sign_assertion=False, sign_response=False, **args)).encode()
        good = sign_assertion(unsigned, self.key, self.crt)
        if variant == "resigned":
            # Signed by this script, not pysaml2: accepted, so what the
            # other variants change is what gets them refused.
            return good
        if variant == "unsigned":
            return unsigned
        if variant == "otherkey":
            return sign_assertion(unsigned, self.okey, self.ocrt)
        if variant == "rsa-sha1":
            return sign_assertion(unsigned, self.key, self.crt, "rsa-sha1")
        if variant.startswith("xsw"):
            return xsw(good, int(variant[3:]), self.sign_response)
        if variant == "comment":
            # Signed for admin@corp.evil; the comment leaves the signature
            # valid (exclusive c14n drops comments).
            return good.replace(b">admin@corp.evil<", b">admin@corp<!---->.evil<", 1)
        if variant == "recipient":
            return good.replace(b'Destination="https://other.example/saml/acs"',
                                ('Destination="%s"' % self.acs).encode(), 1)
        if variant == "destination":
            return good.replace(('Destination="%s"' % self.acs).encode(),
                                b'Destination="https://other.example/saml/acs"', 1)
        if variant == "status":
            # A signed assertion in a response whose status is not Success.
            return good.replace(b"urn:oasis:names:tc:SAML:2.0:status:Success",
                                b"urn:oasis:names:tc:SAML:2.0:status:Responder", 1)
        if variant in ("expired", "notyet", "noaudience", "audience", "issuer"):
            doc = etree.fromstring(unsigned)
            a = doc.find("saml:Assertion", NS)
            if variant == "expired":
                past = (datetime.datetime.now(datetime.timezone.utc)
                        - datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
                for el in a.iter():
                    for attr in ("NotOnOrAfter", "IssueInstant"):
                        if el.get(attr):
                            el.set(attr, past)
                for el in a.iter():
                    if el.get("NotBefore"):
                        el.set("NotBefore", past)
            elif variant == "notyet":
                # Valid only from an hour from now (beyond the skew).
                future = (datetime.datetime.now(datetime.timezone.utc)
                          + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
                for c in a.iter("{%s}Conditions" % NS["saml"]):
                    c.set("NotBefore", future)
            elif variant == "issuer":
                # Signed by the IdP's key but naming another issuer.
                for i in doc.iter("{%s}Issuer" % NS["saml"]):
                    i.text = "https://other-idp.example/"
            elif variant == "audience":
                # A response the IdP made for another SP.
                for au in a.findall(".//saml:Audience", NS):
                    au.text = "https://other.example/saml/metadata"
            else:
                for ar in a.findall(".//saml:AudienceRestriction", NS):
                    ar.getparent().remove(ar)
            return sign_assertion(etree.tostring(doc), self.key, self.crt)
        raise ValueError("unknown variant " + variant)

    def request_signature(self, query):
        """The AuthnRequest's HTTP-Redirect signature: "none", "valid" or
        "invalid", checked with pysaml2 against DIR/sp.crt."""
        if "Signature" not in query:
            return "none"
        try:
            with open(os.path.join(self.dir, "sp.crt")) as f:
                body = "".join(l for l in f.read().splitlines() if "-----" not in l)
            ok = verify_redirect_signature(query, self.server.sec.sec_backend, cert=body)
        except Exception as e:
            return "invalid (%r)" % e
        return "valid" if ok else "invalid"

    def sign_response(self, xml):
        """Signs the whole Response (for XSW1 and XSW2)."""
        doc = etree.fromstring(xml)
        with tempfile.NamedTemporaryFile("wb", suffix=".xml", delete=False) as f:
            sig = etree.fromstring(sign_assertion(xml, self.key, self.crt)).find(".//ds:Signature", NS)
            a = doc.find("saml:Assertion", NS)
            for s in a.findall("ds:Signature", NS):
                a.remove(s)
            sig.find(".//ds:Reference", NS).set("URI", "#" + doc.get("ID"))
            for t in sig.findall(".//ds:DigestValue", NS) + sig.findall(".//ds:SignatureValue", NS) + sig.findall(".//ds:X509Certificate", NS):
                t.text = None
            doc.find("saml:Issuer", NS).addnext(sig)
            f.write(etree.tostring(doc))
            path = f.name
        try:
            return subprocess.run(
                [XMLSEC, "--sign", "--privkey-pem", f"{self.key},{self.crt}", "--id-attr:ID",
                 "urn:oasis:names:tc:SAML:2.0:protocol:Response", path],
                check=True, capture_output=True,
            ).stdout
        finally:
            os.unlink(path)


def page(title, body):
    return f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head><body><h1>{title}</h1>{body}</body></html>"


def handler(idp):
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def send(self, code, body, ctype="text/html; charset=utf-8"):
            b = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(b)))
            self.end_headers()
            self.wfile.write(b)

        def do_GET(self):
            u = urllib.parse.urlparse(self.path)
            q = urllib.parse.parse_qs(u.query)
            if u.path != "/sso" or "SAMLRequest" not in q:
                return self.send(404, page("not found", ""))
            req = html.escape(q["SAMLRequest"][0])
            signed = idp.request_signature({k: v[0] for k, v in q.items()})
            self.send(200, page("Test IdP sign-in", f"""
<form method="post" action="/login" id="login">
<input type="hidden" name="SAMLRequest" value="{req}">
<p><label>Username <input name="username" id="username"></label></p>
<p><label>Password <input name="password" id="password" type="password"></label></p>
<input type="hidden" name="variant" value="good">
<p id="request-signature">{signed}</p>
<button type="submit" id="signin">Sign in</button></form>"""))

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            f = {k: v[0] for k, v in urllib.parse.parse_qs(self.rfile.read(n).decode()).items()}
            if self.path != "/login":
                return self.send(404, page("not found", ""))
            user = f.get("username", "")
            if user not in USERS or f.get("password") != "pw-" + user:
                return self.send(403, page("wrong username or password", ""))
            try:
                xml = idp.response(f.get("SAMLRequest", ""), user, f.get("variant", "good"))
            except Exception as e:  # the test reads the reason
                return self.send(500, page("error", html.escape(repr(e))))
            b64 = base64.b64encode(xml).decode()
            self.send(200, page("Signed in", f"""
<form method="post" action="{html.escape(idp.acs)}" id="saml">
<input type="hidden" name="SAMLResponse" value="{b64}">
<button type="submit" id="continue">Continue to postern</button></form>"""))

    return H


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--sp-entity", required=True)
    p.add_argument("--acs", required=True)
    args = p.parse_args()
    idp = Idp(args)
    httpd = ThreadingHTTPServer(("127.0.0.1", args.port), handler(idp))
    print("READY", flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
