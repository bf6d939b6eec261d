"""Daphne answers an over-long request line with 414 instead of closing the connection.

Daphne serves HTTP through Twisted, whose HTTPChannel drops the connection without a word when a
line exceeds MAX_LENGTH (16 KB): a 20 KB query string got an empty reply. Queries up to that size
reach Django, whose UriTooLongMiddleware answers 414 above 8 KB; this covers the rest, so every
oversized query gets a 414 whether Daphne serves directly (`make run`) or behind nginx (which
answers 414 itself). A header line that long is 431. Installed by socproject.asgi, which Daphne
imports before it serves.
"""

import re

from twisted.web import http

_REQUEST_LINE = re.compile(rb"^[A-Z]+ ")  # a method, then the target: the first line of a request
ANSWERS = {
    True: (b"414 URI Too Long", b"Request-URI too long: a query string is at most 8 KB.\n"),
    False: (b"431 Request Header Fields Too Large", b"A request header line is too long.\n"),
}


def _answer_and_close(channel, line):
    """HTTPChannel.lineLengthExceeded: say why, then close (Twisted only closed)."""
    status, body = ANSWERS[bool(_REQUEST_LINE.match(line))]
    channel.transport.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: text/plain; charset=utf-8\r\n"
                            b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
    channel.transport.loseConnection()


def install():
    http.HTTPChannel.lineLengthExceeded = _answer_and_close
