# The XML echo bot of Prosody's mod_rest README (prosody-modules, mod_rest/README.markdown,
# "Examples / Python / Flask"), verbatim below this comment. xrelay's tests run it as a
# webhook: flask --app examples/flask_xml_echo.py run --port PORT
from flask import Flask, Response, request
import xml.etree.ElementTree as ET

app = Flask("echobot")


@app.before_request
def parse():
    request.stanza = ET.fromstring(request.data)


@app.route("/", methods=["POST"])
def hello():
    if request.stanza.tag == "message":
        return Response(
            "<message><body>Yes this is bot</body></message>",
            content_type="application/xmpp+xml",
        )

    return Response(status=501)


if __name__ == "__main__":
    app.run()
