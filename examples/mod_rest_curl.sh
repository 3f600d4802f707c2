#!/bin/sh
# The curl examples of Prosody's mod_rest README (prosody-modules, mod_rest/README.markdown,
# "Sending stanzas" and "Replies"), with only the URL, the credentials (`--user username`
# prompts for a password; here the key is the password) and the addresses changed for xrelay: BASE (e.g. http://127.0.0.1:5281), KEY (an API key ID/SECRET with the
# rest scope), TO (a recipient) and SERVER (its domain). xrelay's tests run each of them.
# usage: BASE=... KEY=... TO=... SERVER=... sh examples/mod_rest_curl.sh xml|xml-fixed|json|ping
set -eu
case "$1" in
xml)
    # As printed in the README, with its stray </body>: xrelay answers 400.
    curl "$BASE/rest" \
        --user "api:$KEY" \
        -H 'Content-Type: application/xmpp+xml' \
        --data-binary "<message type=\"chat\" to=\"$TO\">
            <body>Hello!</body>
        </body>"
    ;;
xml-fixed)
    curl "$BASE/rest" \
        --user "api:$KEY" \
        -H 'Content-Type: application/xmpp+xml' \
        --data-binary "<message type=\"chat\" to=\"$TO\">
            <body>Hello!</body>
        </message>"
    ;;
json)
    curl "$BASE/rest" \
        --oauth2-bearer "$KEY" \
        -H 'Content-Type: application/json' \
        --data-binary "{
           \"body\" : \"Hello!\",
           \"kind\" : \"message\",
           \"to\" : \"$TO\",
           \"type\" : \"chat\"
        }"
    ;;
ping)
    curl "$BASE/rest" \
        --oauth2-bearer "$KEY" \
        -H 'Content-Type: application/xmpp+xml' \
        --data-binary "<iq type=\"get\" to=\"$SERVER\">
            <ping xmlns=\"urn:xmpp:ping\"/>
        </iq>"
    ;;
esac
