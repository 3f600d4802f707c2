#!/bin/sh
# xrelay webhook as a CGI script (format = "xml"), for uhttpd or busybox httpd.
# Answers "you said: TEXT" to every message that has a body.
stanza=$(head -c "${CONTENT_LENGTH:-0}")
text=$(printf '%s' "$stanza" | sed -n 's:.*<body>\(.*\)</body>.*:\1:p')
if [ -z "$text" ]; then
    printf 'Status: 204 No Content\r\n\r\n'
    exit 0
fi
# $text is still XML-escaped as it came, so it can go back into XML as it is.
printf 'Status: 200 OK\r\nContent-Type: application/xmpp+xml\r\n\r\n'
printf '<message><body>you said: %s</body></message>' "$text"
