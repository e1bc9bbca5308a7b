"""A submission server as a provider runs one: aiosmtpd requiring STARTTLS before anything
else and AUTH (PLAIN/LOGIN) before MAIL, with a throwaway CA made by trustme.

    python server.py DIR USER PASSWORD

writes DIR/ca.pem (the root the client must trust), a DKIM key as a domain owner makes one
(DIR/dkim.pem, RSA 2048 PKCS#1, and DIR/dkim.txt, the TXT record it would publish), then
DIR/port once listening; every
accepted message goes to DIR/NNN.eml, with DIR/NNN.json saying whether the session was TLS
and who authenticated. Stops on SIGTERM.
"""

import json
import socket
import signal
import ssl
import sys
import threading
from pathlib import Path

import base64

import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

out, user, password = Path(sys.argv[1]), sys.argv[2].encode(), sys.argv[3].encode()
ca = trustme.CA()
ca.cert_pem.write_to_path(str(out / "ca.pem"))
dkim_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
(out / "dkim.pem").write_bytes(dkim_key.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
    serialization.NoEncryption()))
public = dkim_key.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
(out / "dkim.txt").write_text("v=DKIM1; k=rsa; p=" + base64.b64encode(public).decode())
server_cert = ca.issue_cert("localhost", "127.0.0.1")
context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
server_cert.configure_cert(context)
attempts = []


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == user and auth_data.password == password
    attempts.append({"mechanism": mechanism, "ok": ok})
    (out / "auth.json").write_text(json.dumps(attempts))
    # handled=False: aiosmtpd then answers 535 itself (its default, True, answers nothing).
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


class Keep:
    count = 0

    async def handle_DATA(self, server, session, envelope):
        Keep.count += 1
        name = f"{Keep.count:03d}"
        (out / f"{name}.eml").write_bytes(envelope.original_content or envelope.content)
        (out / f"{name}.json").write_text(json.dumps({
            "tls": session.ssl is not None,
            "authenticated": session.authenticated,
            "login": getattr(session.auth_data, "login", b"").decode(),
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
        }))
        return "250 Message accepted for delivery"


with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    free_port = probe.getsockname()[1]
controller = Controller(
    Keep(),
    hostname="127.0.0.1",
    port=free_port,
    tls_context=context,
    require_starttls=True,
    authenticator=authenticator,
    auth_required=True,
    auth_require_tls=True,
)
controller.start()
(out / "port").write_text(str(controller.port))
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
signal.signal(signal.SIGINT, lambda *_: stop.set())
stop.wait()
controller.stop()
