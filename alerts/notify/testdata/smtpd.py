"""A loopback SMTP server for alerts/notify's tests, on aiosmtpd.

Usage: smtpd.py MODE OUTDIR [CERT KEY USER PASSWORD]

MODE is "starttls" (STARTTLS required before MAIL, AUTH required and only
over TLS), "implicit" (TLS from the first byte, AUTH required) or "plain"
(no TLS offered, no AUTH). It listens on 127.0.0.1 on a free port, prints
the port on a line, then writes each message it accepts to
OUTDIR/<n>.json: the envelope, whether the session was encrypted, the
authenticated login, and the message's data. It exits when its standard
input closes.
"""

import asyncio
import json
import os
import ssl
import sys
import threading

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def main():
    mode, out_dir = sys.argv[1], sys.argv[2]
    tls_ctx = None
    user = password = None
    if mode != "plain":
        cert, key, user, password = sys.argv[3:7]
        tls_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_ctx.load_cert_chain(cert, key)

    class Handler:
        count = 0

        async def handle_DATA(self, server, session, envelope):
            Handler.count += 1
            login = None
            if session.auth_data is not None:
                login = session.auth_data.login.decode()
            rec = {
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "tls": server.transport.get_extra_info("ssl_object") is not None,
                "login": login,
                "data": envelope.content.decode("utf-8", "replace"),
            }
            tmp = os.path.join(out_dir, "%d.tmp" % Handler.count)
            with open(tmp, "w") as f:
                json.dump(rec, f)
            os.rename(tmp, os.path.join(out_dir, "%d.json" % Handler.count))
            return "250 OK"

    def authenticator(server, session, envelope, mechanism, auth_data):
        if (isinstance(auth_data, LoginPassword)
                and auth_data.login == user.encode()
                and auth_data.password == password.encode()):
            return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False)

    def factory():
        if mode == "starttls":
            return SMTP(Handler(), hostname="smtp.test", tls_context=tls_ctx,
                        require_starttls=True, auth_required=True,
                        auth_require_tls=True, authenticator=authenticator)
        if mode == "implicit":
            return SMTP(Handler(), hostname="smtp.test", auth_required=True,
                        auth_require_tls=False, authenticator=authenticator)
        return SMTP(Handler(), hostname="smtp.test")

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(loop.create_server(
        factory, host="127.0.0.1", port=0,
        ssl=tls_ctx if mode == "implicit" else None))
    print(server.sockets[0].getsockname()[1], flush=True)

    def wait_stdin():
        sys.stdin.read()
        loop.call_soon_threadsafe(loop.stop)

    threading.Thread(target=wait_stdin, daemon=True).start()
    loop.run_forever()


if __name__ == "__main__":
    main()
