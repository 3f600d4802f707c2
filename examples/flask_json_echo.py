# The JSON variant of the echo bot of Prosody's mod_rest README (prosody-modules,
# mod_rest/README.markdown, "Examples / Python / Flask"), verbatim below this comment. It needs
# `format = "json"` in xrelay's [webhook] (mod_rest: rest_callback_content_type).
# xrelay's tests run it as a webhook: flask --app examples/flask_json_echo.py run --port PORT
from flask import Flask, Response, request, jsonify

app = Flask("echobot")


@app.route("/", methods=["POST"])
def hello():
    print(request.data)
    if request.is_json:
        data = request.get_json()
        if data["kind"] == "message":
            return jsonify({"body": "hello"})

    return Response(status=501)


if __name__ == "__main__":
    app.run()
